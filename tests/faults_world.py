"""What the fault-injection tests share: a hunt whose every finding carries a unique token in its
command line, events spread over hourly runs, a real Runner over a real ledger (Azurite, possibly
behind devtools.fault_proxy), the local engine or a fake service, and a local Teams webhook.

Findings lost are counted by comparing the tokens of the events that should be found with the
tokens in the cards the webhook accepted.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from azure.data.tables import TableServiceClient

from devtools.webhook import Reply, WebhookReceiver
from shared.hunt import Hunt, TeamsOptions
from shared.incidents import IncidentStore
from shared.ledger import Ledger
from shared.notify.teams import TeamsNotifier
from shared.runner import Runner, RunSummary
from shared.sources.base import QuerySource
from shared.storage import Storage

BASE = datetime(2026, 11, 27, 0, 0, tzinfo=UTC)
QUERY = ('DeviceProcessEvents | where ProcessCommandLine contains "fwtok" '
         "| project Timestamp, DeviceId, ReportId, ProcessCommandLine")
SENTINEL_QUERY = ('DeviceProcessEvents | where ProcessCommandLine contains "fwtok" '
                  "| project TimeGenerated, DeviceId, ReportId, ProcessCommandLine")
FAST_STORAGE: dict[str, Any] = {"retry_total": 2, "retry_backoff_factor": 0.02,
                                "retry_backoff_max": 0.1, "connection_timeout": 2,
                                "read_timeout": 5}
"""Short Table client retries, so a faulty run ends in well under a second."""


def make_hunt(source: str = "defender", lookback: timedelta = timedelta(hours=4)) -> Hunt:
    return Hunt(id=str(uuid.uuid4()), name="Fault marker", source=source,  # type: ignore[arg-type]
                query=QUERY if source == "defender" else SENTINEL_QUERY,
                path=Path("fault-marker.yaml"), dedup_by=("DeviceId", "ReportId"),
                lookback=lookback, teams=TeamsOptions(max_findings=50))


def fast_notifier(url: str, *, timeout: float = 2, budget: float = 6) -> TeamsNotifier:
    return TeamsNotifier(url, timeout_seconds=timeout, max_attempts=3, max_total_seconds=budget,
                         min_interval_seconds=0)


@dataclass
class Events:
    """JSON-lines DeviceProcessEvents, each with a unique token: the expected findings."""

    path: Path
    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(self, hour: int, count: int, *, tag: str = "", time_column: str = "Timestamp",
            spacing: timedelta = timedelta(minutes=7)) -> list[str]:
        """*count* events in the hour before BASE + *hour*; returns their tokens."""
        now = BASE + timedelta(hours=hour)
        tokens = []
        for number in range(count):
            token = f"fwtok{tag}h{hour}e{number}x{uuid.uuid4().hex[:6]}"
            when = now - timedelta(minutes=3) - number * spacing
            self.rows.append({time_column: when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                              "DeviceId": "d" * 40, "DeviceName": "ws-1",
                              "ReportId": len(self.rows) + 1, "FileName": "cmd.exe",
                              "ActionType": "ProcessCreated",
                              "ProcessCommandLine": f"{token} cmd"})
            tokens.append(token)
        self.path.write_text("".join(json.dumps(row) + "\n" for row in self.rows))
        return tokens


@dataclass
class World:
    hunt: Hunt
    sources: Mapping[str, QuerySource]
    webhook: WebhookReceiver
    connection_string: str
    tables: dict[str, str]
    summaries: list[RunSummary] = field(default_factory=list)

    def storage(self, connection_string: str | None = None) -> Storage:
        """A fresh storage layer, as the app builds one per run (short retries)."""
        return Storage.from_connection_string(connection_string or self.connection_string,
                                              **FAST_STORAGE)

    def ledger(self, storage: Storage | None = None) -> Ledger:
        """A fresh ledger, as each run makes one."""
        tables = {k: v for k, v in self.tables.items() if k != "incidents_table"}
        return Ledger(storage or self.storage(), **tables)

    def incidents(self, storage: Storage | None = None) -> IncidentStore:
        """A fresh incident store on the ledger's account, as the app builds one per run."""
        return IncidentStore(storage or self.storage(), table=self.tables["incidents_table"])

    def run(self, hour: float, *, connection_string: str | None = None,
            notifier: TeamsNotifier | None = None) -> RunSummary:
        now = BASE + timedelta(hours=hour)
        storage = self.storage(connection_string)
        runner = Runner(hunts=[self.hunt], sources=self.sources, ledger=self.ledger(storage),
                        notifier=notifier or fast_notifier(self.webhook.url),
                        incidents=self.incidents(storage), storage=storage)
        summary = runner.run_once(now)
        self.summaries.append(summary)
        return summary

    def posts_per_token(self, tokens: list[str]) -> Counter[str]:
        """How many accepted findings cards show each token (0: lost)."""
        counts: Counter[str] = Counter(dict.fromkeys(tokens, 0))
        for body in self.accepted_bodies():
            for token in tokens:
                counts[token] += token in body
        return counts

    def accepted_bodies(self) -> list[str]:
        return [post.body.decode() for post in self.webhook.posts
                if isinstance(post.answer, Reply) and post.answer.status < 300
                and b"error" not in post.answer.body.lower() and b"fwtok" in post.body]

    def notices(self) -> list[str]:
        """Bodies of posts that are not findings cards (coverage and other notices)."""
        return [post.body.decode() for post in self.webhook.posts if b"fwtok" not in post.body]

    def delete_table(self, service_connection_string: str, kind: str) -> None:
        """Delete one of the ledger's tables (``pending``, ``checkpoints``) behind its back."""
        name = self.tables[f"{kind}_table"]
        TableServiceClient.from_connection_string(service_connection_string).delete_table(name)


def table_names() -> dict[str, str]:
    suffix = uuid.uuid4().hex[:10]
    return {"findings_table": f"fwf{suffix}", "pending_table": f"fwp{suffix}",
            "checkpoints_table": f"fwc{suffix}", "incidents_table": f"fwi{suffix}"}


def lost(counts: Mapping[str, int]) -> list[str]:
    return sorted(token for token, posts in counts.items() if posts == 0)


def duplicates(counts: Mapping[str, int]) -> int:
    return sum(posts - 1 for posts in counts.values() if posts > 1)
