"""The fan-out's queue messages: small JSON documents, one per (tenant, due hunt) of a cycle and
one per delivery trigger. Every message names its tenant and cycle, so any copy of it (Storage
queues deliver at least once) lands on the same ledger, counter and leases."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Final, Literal

VERSION: Final = 1
HUNTS_QUEUE: Final = "huntwire-hunts"
DELIVERY_QUEUE: Final = "huntwire-delivery"
POISON_SUFFIX: Final = "-poison"
"""The Functions host moves a message that failed ``maxDequeueCount`` times to <queue>-poison."""
DEFAULT_TENANT: Final = "default"


class MessageError(ValueError):
    """A message that can never be processed (not ours, or malformed): its queue's poison
    handler announces it."""


@dataclass(frozen=True)
class HuntMessage:
    """Run one hunt of one tenant for the cycle started at *now*."""

    tenant: str
    cycle: str
    hunt: str
    now: str
    """The cycle's start (ISO 8601, UTC): every hunt of the cycle ends its window here."""
    kind: Literal["hunt"] = "hunt"

    @property
    def started(self) -> datetime:
        return datetime.fromisoformat(self.now)


@dataclass(frozen=True)
class DeliveryMessage:
    """Deliver the findings of one tenant's cycle (when its hunts are done, or at its
    deadline: *reason* says which)."""

    tenant: str
    cycle: str
    reason: Literal["complete", "deadline"] = "complete"
    kind: Literal["deliver"] = "deliver"


Message = HuntMessage | DeliveryMessage


def encode(message: Message) -> str:
    return json.dumps({"v": VERSION, **asdict(message)}, separators=(",", ":"))


def decode(body: str | bytes) -> Message:
    """The message in *body*; :class:`MessageError` naming what is wrong."""
    try:
        document: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MessageError(f"queue message is not JSON: {exc}") from None
    if not isinstance(document, dict) or document.get("v") != VERSION:
        raise MessageError(f"queue message is not a huntwire v{VERSION} message")
    fields = {k: v for k, v in document.items() if k != "v"}
    kind = fields.get("kind")
    cls: type[HuntMessage] | type[DeliveryMessage]
    if kind == "hunt":
        cls = HuntMessage
    elif kind == "deliver":
        cls = DeliveryMessage
    else:
        raise MessageError(f"queue message has unknown kind {kind!r}")
    if not all(isinstance(v, str) and v for v in fields.values()):
        raise MessageError(f"{kind} message: every field must be a non-empty string")
    try:
        message = cls(**fields)
    except TypeError:
        raise MessageError(f"{kind} message: fields {sorted(fields)} do not match") from None
    if isinstance(message, HuntMessage):
        try:
            datetime.fromisoformat(message.now)
        except ValueError:
            raise MessageError(f"hunt message: 'now' is not an ISO 8601 time: "
                               f"{message.now[:40]!r}") from None
    if isinstance(message, DeliveryMessage) and message.reason not in ("complete", "deadline"):
        raise MessageError(f"deliver message: unknown reason {message.reason[:20]!r}")
    return message


def cycle_id(now: datetime) -> str:
    """The cycle's name: its start to the minute (a retried timer lands on the same cycle)."""
    return f"{now:%Y%m%dT%H%M}"
