"""The validation manifest: which hunts passed ``huntwire validate``, by id and content hash.

``huntwire validate --manifest FILE`` writes it where Node runs (CI, the ``azd`` predeploy hook);
the deployed function, which has no Node, runs a hunt only when :func:`manifest_allows` says so,
and takes the finding identity Kusto.Language found from :func:`manifest_identity`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import ConfigurationError
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
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
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


def validated_hunts(hunts: list[Hunt], path: Path) -> list[Hunt]:
    """*hunts* that the manifest at *path* allows, each other one skipped with a logged notice.

    Without a manifest file (local runs) every hunt runs, with one warning; a manifest that
    cannot be read runs nothing, since nothing can be shown to have passed validation.
    """
    if not path.exists():
        log.warning("huntwire.manifest no validation manifest at %s: running every hunt "
                    "unvalidated (deployments ship one: `huntwire validate --manifest`)", path)
        return hunts
    try:
        manifest = load_manifest(path)
    except ConfigurationError as exc:
        log.error("huntwire.manifest %s: no hunt runs", exc)
        return []
    allowed = []
    for hunt in hunts:
        reason = manifest_allows(hunt, manifest)
        if reason is None:
            allowed.append(hunt)
        else:
            log.warning("huntwire.hunt_skipped %s", reason)
    return allowed
