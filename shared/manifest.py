"""The validation manifest: which hunts passed ``huntwire validate``, by id and content hash.

``huntwire validate --manifest FILE`` writes it where Node runs (CI, the ``azd`` predeploy hook);
the deployed function, which has no Node, runs a hunt only when :func:`manifest_allows` says so,
and takes the finding identity Kusto.Language found with it (:func:`validated_hunts`, one read).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import ConfigurationError
from .files import write_atomically
from .hunt import Hunt
from .identity import Identity

log = logging.getLogger("huntwire")

FORMAT = "huntwire-manifest/1"
DEFAULT_NAME = "huntwire.manifest.json"


def default_manifest_path(hunts_dir: Path) -> Path:
    """Where validate writes and the runner reads by default: beside the hunt files."""
    return hunts_dir / DEFAULT_NAME


@dataclass(frozen=True)
class ManifestEntry:
    sha256: str
    file: str
    identity: tuple[str, ...]
    basis: str


@dataclass(frozen=True)
class Manifest:
    hunts: dict[str, ManifestEntry]
    generated: str


def content_hash(path: Path) -> str:
    """SHA-256 of the hunt file's bytes: any edit, even of a comment, changes it."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_manifest(hunts: list[Hunt], identities: dict[str, Identity],
                   now: datetime | None = None) -> dict[str, Any]:
    """The manifest document for the *hunts* that passed validation (keyed by id)."""
    entries = {}
    for hunt in sorted(hunts, key=lambda h: h.id):
        identity = identities.get(hunt.id)
        if identity is None:
            continue
        entries[hunt.id] = {"file": hunt.path.name, "sha256": content_hash(hunt.path),
                            "identity": list(identity.columns), "basis": identity.basis}
    moment = (now or datetime.now(UTC)).astimezone(UTC).isoformat().replace("+00:00", "Z")
    return {"format": FORMAT, "generated": moment, "hunts": entries}


def write_manifest(path: Path, hunts: list[Hunt], identities: dict[str, Identity]) -> int:
    """Write the manifest; return how many hunts it lists."""
    document = build_manifest(hunts, identities)
    write_atomically(path, json.dumps(document, indent=2) + "\n")
    return len(document["hunts"])


def load_manifest(path: Path) -> Manifest:
    """Read a manifest; ConfigurationError when it is missing or not one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"validation manifest {path}: cannot read: "
                                 f"{exc.strerror or exc}") from exc
    except ValueError as exc:
        raise ConfigurationError(f"validation manifest {path}: not JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigurationError(f"validation manifest {path}: not a {FORMAT} file")
    try:
        hunts = {str(key): ManifestEntry(str(v["sha256"]), str(v["file"]),
                                         tuple(str(c) for c in v["identity"]), str(v["basis"]))
                 for key, v in data["hunts"].items()}
    except (KeyError, TypeError, AttributeError) as exc:
        raise ConfigurationError(f"validation manifest {path}: malformed entry: {exc}") from exc
    return Manifest(hunts, str(data.get("generated", "")))


def manifest_allows(hunt: Hunt, manifest: Manifest) -> str | None:
    """None when *hunt* is the file that was validated; else the reason it must not run."""
    entry = manifest.hunts.get(hunt.id)
    if entry is None:
        return (f"hunt {hunt.id} ({hunt.path.name}) did not pass validation: it is not in the "
                "manifest; run `huntwire validate --manifest` and deploy again")
    try:
        digest = content_hash(hunt.path)
    except OSError as exc:
        return f"hunt file {hunt.path.name} cannot be read: {exc.strerror or exc}"
    if digest != entry.sha256:
        return (f"hunt {hunt.id} ({hunt.path.name}) was edited after validation (content hash "
                f"differs from the manifest of {manifest.generated}); validate it again")
    return None


def manifest_identity(hunt: Hunt, manifest: Manifest) -> Identity | None:
    """The identity validate found for *hunt*, when the manifest lists this very file."""
    if manifest_allows(hunt, manifest) is not None:
        return None
    entry = manifest.hunts[hunt.id]
    return Identity(entry.identity, entry.basis)


def in_azure(environ: Mapping[str, str] | None = None) -> bool:
    """Running in Azure Functions (the platform sets ``WEBSITE_INSTANCE_ID``), where a
    deployment always ships the manifest."""
    return bool((os.environ if environ is None else environ).get("WEBSITE_INSTANCE_ID"))


def validated_hunts(hunts: list[Hunt], path: Path, *, required: bool | None = None) -> list[Hunt]:
    """*hunts*, each one the manifest at *path* does not allow marked ``refused`` with the reason
    (the runner fails it without querying: a failed run and, after repeated runs, a health
    notice; never a silent skip), each one it allows with the finding identity ``validate``
    found for this very file (the ledger's keys and the cards use it; a file that names its
    ``dedupBy`` keeps it).

    A manifest that cannot be read refuses every hunt. Without a manifest file: locally every hunt
    runs, with one warning; in Azure (*required*, by default :func:`in_azure`) every hunt is
    refused, since nothing shows it passed validation.
    """
    if not path.exists():
        if required if required is not None else in_azure():
            reason = (f"no validation manifest at {path.name}: deployments ship one "
                      "(`huntwire validate --manifest`); deploy again")
            log.error("huntwire.manifest %s: no hunt runs", reason)
            return [replace(h, refused=reason) for h in hunts]
        log.warning("huntwire.manifest no validation manifest at %s: running every hunt "
                    "unvalidated (deployments ship one: `huntwire validate --manifest`)", path)
        return hunts
    try:
        manifest = load_manifest(path)
    except ConfigurationError as exc:
        log.error("huntwire.manifest %s: no hunt runs", exc)
        return [replace(h, refused=f"{exc}; validate and deploy again") for h in hunts]
    checked = []
    for hunt in hunts:
        refusal = manifest_allows(hunt, manifest)
        if refusal is not None:
            log.warning("huntwire.hunt_refused %s", refusal)
            checked.append(replace(hunt, refused=refusal))
            continue
        found = manifest.hunts[hunt.id].identity
        checked.append(replace(hunt, identity=found) if found and not hunt.dedup_explicit
                       else hunt)
    return checked


def remove_stale_manifest(path: Path) -> bool:
    """Remove the huntwire manifest at *path* (a failed validation must not leave an older one
    to be deployed); True when one was removed. Any other file is left alone."""
    try:
        load_manifest(path)
    except ConfigurationError:
        return False
    path.unlink()
    return True
