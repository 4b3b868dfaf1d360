"""Signed, expiring snooze tokens: ``v2.<payload>.<HMAC-SHA256>``, both base64url.

The payload (zlib-compressed JSON) names one hunt, the device and identifying values of one
finding (``scope.snooze_values``), when the token expires, a random link id (a link creates
at most one snooze, and once used or its snooze removed it is refused: ``store``) and, on a
multi-tenant deployment, the key of the tenant whose card carried it (whose tables the snooze
goes to; no tenant: the deployment's one tenant, as before tenants existed). Anything
changed in it breaks the signature; the signature is compared in constant time. The key is the
setting ``HUNTWIRE_SNOOZE_KEY`` (Key Vault in Azure). ``v1`` tokens (no device, no link id) are
refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ..errors import HuntwireError

VERSION = "v2"
MIN_KEY_BYTES = 32
MAX_TOKEN_CHARS = 6000
LINK_LIFETIME = timedelta(days=7)
MAX_BODY_BYTES = 64 * 1024
CLOCK_SKEW = timedelta(hours=1)
"""A token whose expiry is further ahead than LINK_LIFETIME plus this is refused."""
LINK_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}\Z")
TENANT_KEY = re.compile(r"^[A-Za-z0-9-]{1,64}\Z")


class TokenError(HuntwireError):
    """The token is malformed, forged, tampered with, expired, or for another finding."""

    permanent = True


@dataclass(frozen=True)
class SnoozeClaim:
    hunt_id: str
    values: dict[str, str]
    """column -> the exact value the hunt returned (device columns included)"""
    expires: datetime
    link_id: str
    """Random, unique per link: what revocation records."""
    tenant: str | None = None
    """The tenant key (``Tenant.key``) of the card's tenant; None: a single-tenant link."""

    @property
    def fingerprint(self) -> str:
        """Stable id of (hunt, values): the snooze rule's id and the form's finding field."""
        return finding_fingerprint(self.hunt_id, self.values)


def finding_fingerprint(hunt_id: str, values: Mapping[str, str]) -> str:
    canonical = json.dumps([hunt_id.casefold(), sorted(values.items())], ensure_ascii=False,
                           separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def check_key(key: bytes) -> bytes:
    if len(key) < MIN_KEY_BYTES:
        raise TokenError(f"the snooze key must be at least {MIN_KEY_BYTES} bytes")
    return key


def new_link_id() -> str:
    return secrets.token_urlsafe(16)


def make_token(key: bytes, hunt_id: str, values: Mapping[str, str], expires: datetime,
               link_id: str | None = None, *, tenant: str | None = None) -> str:
    """A signed link token; *tenant*: the key of the tenant whose tables it snoozes in (None:
    the deployment's one tenant; the token then carries no tenant, as before)."""
    claims: dict[str, object] = {"h": hunt_id, "v": dict(values), "e": int(expires.timestamp()),
                                 "n": link_id or new_link_id()}
    if tenant is not None:
        if not TENANT_KEY.match(tenant):
            raise TokenError("a tenant key is 1-64 letters, digits or '-'")
        claims["t"] = tenant
    body = json.dumps(claims, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    payload = _b64(zlib.compress(body.encode(), 9))
    signed = f"{VERSION}.{payload}"
    return f"{signed}.{_b64(_sign(check_key(key), signed))}"


def read_token(key: bytes, token: str, now: datetime, *, hunt_id: str | None = None,
               fingerprint: str | None = None) -> SnoozeClaim:
    """The claim of a genuine, unexpired token; with *hunt_id*/*fingerprint*, also check that
    the token is for that hunt / that finding. Raises TokenError otherwise."""
    parts = token.split(".") if len(token) <= MAX_TOKEN_CHARS else []
    if len(parts) == 3 and parts[0] == "v1":
        raise TokenError("this link is from an older version of huntwire; use the link of a "
                         "newer card")
    if len(parts) != 3 or parts[0] != VERSION:
        raise TokenError("malformed link")
    signed = f"{parts[0]}.{parts[1]}"
    try:
        signature = _unb64(parts[2])
    except ValueError:
        raise TokenError("malformed link") from None
    if not hmac.compare_digest(signature, _sign(check_key(key), signed)):
        raise TokenError("this link's signature is not valid")
    claim = _claim(parts[1])
    if now >= claim.expires:
        raise TokenError("this link has expired")
    if claim.expires > now + LINK_LIFETIME + CLOCK_SKEW:
        raise TokenError("this link's expiry is further ahead than a link lives")
    if hunt_id is not None and claim.hunt_id != hunt_id:
        raise TokenError("this link is for another hunt")
    if fingerprint is not None and not hmac.compare_digest(claim.fingerprint, fingerprint):
        raise TokenError("this link is for another finding")
    return claim


def _claim(payload: str) -> SnoozeClaim:
    try:
        inflate = zlib.decompressobj()
        text = inflate.decompress(_unb64(payload), MAX_BODY_BYTES)
        if inflate.unconsumed_tail:
            raise ValueError("payload too large")
        body = json.loads(text)
        values = {str(k): str(v) for k, v in body["v"].items()}
        link_id = body["n"]
        if not isinstance(link_id, str) or not LINK_ID.match(link_id):
            raise ValueError("bad link id")
        tenant = body.get("t")
        if tenant is not None and (not isinstance(tenant, str) or not TENANT_KEY.match(tenant)):
            raise ValueError("bad tenant")
        expires = datetime.fromtimestamp(int(body["e"]), UTC)
        return SnoozeClaim(str(body["h"]), values, expires, link_id, tenant)
    except (ValueError, KeyError, TypeError, AttributeError, OverflowError, OSError,
            RecursionError, zlib.error):
        raise TokenError("malformed link") from None


def _sign(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise ValueError("not base64url") from exc
