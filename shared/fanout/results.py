"""What each hunt of a cycle came to, recorded on the cycle's counter when it is counted done,
for the cycle's delivery: the tenant's problems (an app not consented fails every Defender hunt
with one access error) and the heartbeat's tally (hunt runs, findings, suppressions) come from
the workers' outcomes, which live in other processes.

Kept small: a short JSON list per hunt, its error cut to a share of a budget that keeps the
counter under Table Storage's 1 MiB entity limit for thousands of hunts, split over string
properties of at most 30,000 characters (a property holds 32K)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from ..health.heartbeat import HuntRun as HeartbeatRun
from ..outcome import HuntOutcome

ERROR_CHARS: Final = 200
BUDGET_CHARS: Final = 300_000
"""All results of one counter (600 KB as UTF-16), each error cut to its share of it."""
CHUNK_CHARS: Final = 30_000


@dataclass(frozen=True)
class HuntResult:
    status: str
    new: int = 0
    suppressed: int = 0
    rows: int = 0
    error: str = ""
    error_kind: str = ""
    error_status: int = 0
    permanent: bool = False

    @classmethod
    def of(cls, outcome: HuntOutcome) -> HuntResult:
        return cls(outcome.status, outcome.new, sum(outcome.suppressed.values()), outcome.rows,
                   " ".join((outcome.error or "").split()), outcome.error_kind or "",
                   outcome.error_status or 0, outcome.error_permanent)

    def outcome(self, hunt_id: str, name: str) -> HuntOutcome:
        """The outcome the delivery starts from (it adds what it posted or failed to)."""
        return HuntOutcome(hunt_id, name, self.status,  # type: ignore[arg-type]
                           rows=self.rows, new=self.new,
                           suppressed={"*": self.suppressed} if self.suppressed else {},
                           error=self.error or None, error_kind=self.error_kind or None,
                           error_status=self.error_status or None,
                           error_permanent=self.permanent)

    def heartbeat(self, hunt_id: str) -> HeartbeatRun:
        return HeartbeatRun(hunt_id, self.status, self.new, self.suppressed, rows=self.rows)


def error_share(hunts: int) -> int:
    """Characters of error each of *hunts* results may keep."""
    return max(0, min(ERROR_CHARS, BUDGET_CHARS // max(1, hunts) - 60))


def encode(results: Mapping[int, HuntResult], hunts: int) -> dict[str, Any]:
    """The counter's result properties: ``Results0``.. and ``ResultChunks``."""
    if not results:
        return {}
    share = error_share(hunts)
    document = {str(index): [r.status, r.new, r.suppressed, r.rows, r.error_kind,
                             r.error_status, int(r.permanent), r.error[:share]]
                for index, r in sorted(results.items())}
    text = json.dumps(document, separators=(",", ":"), ensure_ascii=False)
    chunks = [text[i:i + CHUNK_CHARS] for i in range(0, len(text), CHUNK_CHARS)]
    return {"ResultChunks": len(chunks), **{f"Results{i}": c for i, c in enumerate(chunks)}}


def decode(entity: Mapping[str, Any]) -> dict[int, HuntResult]:
    """The results in a counter entity (none when it has none, or they do not parse: the
    delivery then goes on without them)."""
    count = int(entity.get("ResultChunks") or 0)
    if not count:
        return {}
    try:
        document = json.loads("".join(str(entity.get(f"Results{i}", "")) for i in range(count)))
        return {int(index): HuntResult(str(v[0]), int(v[1]), int(v[2]), int(v[3]), str(v[7]),
                                       str(v[4]), int(v[5]), bool(v[6]))
                for index, v in document.items()}
    except (ValueError, TypeError, IndexError, AttributeError):
        return {}
