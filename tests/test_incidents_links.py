"""Incidents against the red team and across devices: a flood never hides a High incident,
incident ids are unique by construction, snooze links are one per hunt and finding identity,
and an account moving to a second device is named on that device's card.

Real parts only: the incident store on Azurite, posts through the Teams notifier to the local
webhook receiver.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devtools.webhook import WebhookReceiver
from shared.cards import card_of
from shared.hunt import Hunt
from shared.incidents import IncidentStore, process_run
from shared.incidents.pipeline import IncidentSettings
from shared.ledger import Finding
from shared.notify.teams import TeamsNotifier
from shared.storage import Storage
from tests.card_text import texts, title

START = datetime(2026, 3, 2, 9, tzinfo=UTC)


def hunt(number: int, severity: str, name: str = "", dedup: tuple[str, ...] = ()) -> Hunt:
    return Hunt(id=f"0d3c8b1e-0000-4000-8000-{number:012d}", name=name or f"Hunt {number}",
                query="x", source="defender", path=Path(f"h{number}.yaml"), severity=severity,
                dedup_by=dedup, dedup_explicit=bool(dedup))


def finding(chosen: Hunt, key: str, row: dict[str, Any], minutes: int = 0) -> Finding:
    moment = START + timedelta(minutes=minutes)
    return Finding(chosen.id, key, {"Timestamp": moment.isoformat(), **row}, moment, moment, 1)


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture
def store(storage_connection_string: str, request: pytest.FixtureRequest) -> IncidentStore:
    suffix = abs(hash(request.node.name)) % 10**8
    return IncidentStore(Storage.from_connection_string(storage_connection_string),
                         table=f"lnk{suffix}")


def run(findings: Mapping[str, list[Finding]], hunts: list[Hunt], store: IncidentStore,
        hook: WebhookReceiver, now: datetime = START + timedelta(hours=1), **options: Any
        ) -> Any:
    with closing(TeamsNotifier(hook.url, min_interval_seconds=0)) as webhook:
        return process_run(findings, hunts, store, webhook, now, **options)


def test_a_flood_of_low_decoys_never_hides_the_high_incident(store: IncidentStore,
                                                             hook: WebhookReceiver) -> None:
    decoy, attack = hunt(1, "Low", "Decoy noise"), hunt(2, "High", "Real reverse shell")
    decoys = [finding(decoy, f"d{n}", {"DeviceId": f"{n:040x}", "DeviceName": f"ws-{n:03d}",
                                       "ReportId": n}) for n in range(80)]
    real = [finding(attack, "a1", {"DeviceId": "f" * 40, "DeviceName": "ws-victim-001",
                                   "ReportId": 999, "FileName": "powershell.exe"})]
    outcome = run({decoy.id: decoys, attack.id: real}, [decoy, attack], store, hook,
                  settings=IncidentSettings(storm_limit=10))

    assert len(outcome.opened) == 81
    assert len(hook.payloads) == 2  # the storm summary, then the High incident on its own
    summary = texts(hook.payloads[0])
    rows = [t for t in summary if t.strip() in ("HIGH", "LOW")]
    assert rows[1].strip() == "HIGH"  # after the header: highest severity first
    assert any("ws-victim-001" in t for t in summary)
    assert title(hook.payloads[1]) == "Real reverse shell on ws-victim-001"
    assert "…and" in " ".join(summary)  # the decoys are cut, not the attack


def test_incident_ids_are_unique_even_when_device_ids_share_their_first_digits(
        store: IncidentStore, hook: WebhookReceiver) -> None:
    shell = hunt(3, "High", "Shell")
    rows = [{"DeviceId": "ab12" + "0" * 36, "DeviceName": "ws-a", "ReportId": 1},
            {"DeviceId": "ab12" + "1" * 36, "DeviceName": "ws-b", "ReportId": 2}]
    outcome = run({shell.id: [finding(shell, f"k{n}", row) for n, row in enumerate(rows)]},
                  [shell], store, hook)

    assert len(outcome.opened) == 2
    assert len(set(outcome.opened)) == 2, outcome.opened
    assert all(i.startswith("HW-20260302-AB12-") for i in outcome.opened)
    # A later run for the second device's new incident does not take the first one's id either.
    later = [finding(shell, "k9", {**rows[1], "ReportId": 9}, minutes=60 * 30)]
    again = run({shell.id: later}, [shell], store, hook, now=START + timedelta(hours=31))
    assert again.opened
    assert not set(again.opened) & set(outcome.opened)


def test_one_labelled_snooze_link_per_hunt_and_finding_identity(store: IncidentStore,
                                                                hook: WebhookReceiver) -> None:
    net = hunt(4, "High", "rundll32 to a public address", dedup=("DeviceId", "RemoteIP"))
    mshta = hunt(5, "Medium", "mshta to a public address", dedup=("DeviceId", "RemoteIP"))
    device = {"DeviceId": "c" * 40, "DeviceName": "ws-fin-014"}
    findings = {
        net.id: [finding(net, "n1", {**device, "RemoteIP": "203.0.113.66", "ReportId": 1}),
                 finding(net, "n2", {**device, "RemoteIP": "203.0.113.66", "ReportId": 2}, 1),
                 finding(net, "n3", {**device, "RemoteIP": "198.51.100.9", "ReportId": 3}, 2)],
        mshta.id: [finding(mshta, "m1", {**device, "RemoteIP": "192.0.2.1", "ReportId": 4}, 3)]}
    asked: list[tuple[str, str]] = []

    def snoozer(chosen: Hunt, row: Mapping[str, Any]) -> tuple[str, str] | None:
        asked.append((chosen.name, str(row["RemoteIP"])))
        return (f"{chosen.name.split()[0]} to {row['RemoteIP']} on {row['DeviceName']}",
                f"https://huntwire.example/api/snooze?t={len(asked)}")

    run(findings, [net, mshta], store, hook, snooze=snoozer)

    assert sorted(asked) == [("mshta to a public address", "192.0.2.1"),
                             ("rundll32 to a public address", "198.51.100.9"),
                             ("rundll32 to a public address", "203.0.113.66")]
    titles = [a["title"] for a in card_of(hook.payloads[0])["actions"]
              if a["title"].startswith("Snooze")]
    assert titles == ["Snooze 7 days: rundll32 to 203.0.113.66 on ws-fin-014",
                      "Snooze 7 days: mshta to 192.0.2.1 on ws-fin-014",
                      "Snooze 7 days: rundll32 to 198.51.100.9 on ws-fin-014"]


def test_no_snooze_link_when_the_snoozer_finds_the_identity_too_broad(
        store: IncidentStore, hook: WebhookReceiver) -> None:
    broad = hunt(6, "High", "Broad")
    row = {"DeviceId": "d" * 40, "DeviceName": "ws-x", "ReportId": 1}
    run({broad.id: [finding(broad, "b1", row)]}, [broad], store, hook,
        snooze=lambda chosen, values: None)

    assert not [a for a in card_of(hook.payloads[0]).get("actions", [])
                if a["title"].startswith("Snooze")]


def test_the_same_account_on_a_second_device_names_the_first_incident(
        store: IncidentStore, hook: WebhookReceiver) -> None:
    shell = hunt(7, "High", "Shell")
    account = {"AccountDomain": "contoso", "AccountName": "alice.moreau"}
    first = run({shell.id: [finding(shell, "s1", {"DeviceId": "e" * 40,
                                                  "DeviceName": "ws-fin-014", "ReportId": 1,
                                                  **account})]}, [shell], store, hook)
    (first_id,) = first.opened
    psexec = hunt(8, "High", "Service started remotely (PsExec)")
    run({psexec.id: [finding(psexec, "p1", {"DeviceId": "1" * 40, "DeviceName": "srv-sql-01",
                                            "ReportId": 2, "FileName": "PSEXESVC.exe",
                                            **account}, minutes=40)]},
        [shell, psexec], store, hook, now=START + timedelta(hours=2))

    second = " ".join(texts(hook.payloads[-1]))
    assert f"account contoso\\alice.moreau also active in {first_id} on ws-fin-014" in second
    # A service account everywhere links nothing.
    system = {"AccountDomain": "nt authority", "AccountName": "system"}
    run({psexec.id: [finding(psexec, "p2", {"DeviceId": "2" * 40, "DeviceName": "srv-web-01",
                                            "ReportId": 3, **system}, minutes=50),
                     finding(psexec, "p3", {"DeviceId": "3" * 40, "DeviceName": "srv-web-02",
                                            "ReportId": 4, **system}, minutes=51)]},
        [psexec], store, hook, now=START + timedelta(hours=2))
    assert not any("also active" in " ".join(texts(p)) for p in hook.payloads[-2:])


def test_a_process_launched_hours_later_by_an_incidents_shell_is_posted_as_its_update(
        store: IncidentStore, hook: WebhookReceiver) -> None:
    shell_hunt, cradle_hunt = hunt(9, "High", "Socket shell"), hunt(10, "Medium", "Cradle")
    device = {"DeviceId": "4d" * 20, "DeviceName": "ws-fin-014"}
    shell = {**device, "ReportId": 1, "FileName": "powershell.exe", "ProcessId": 19324,
             "ProcessCreationTime": "2026-03-02T09:00:00Z", "InitiatingProcessId": 24980,
             "InitiatingProcessCreationTime": "2026-03-02T08:59:59Z",
             "InitiatingProcessFileName": "cmd.exe"}
    first = run({shell_hunt.id: [finding(shell_hunt, "s1", shell)]}, [shell_hunt], store, hook)
    (shell_id,) = first.opened
    cradle = {**device, "ReportId": 2, "FileName": "powershell.exe", "ProcessId": 25564,
              "ProcessCreationTime": "2026-03-02T19:27:00Z", "InitiatingProcessId": 19324,
              "InitiatingProcessCreationTime": "2026-03-02T09:00:00.000Z",
              "InitiatingProcessFileName": "powershell.exe"}
    later = run({cradle_hunt.id: [finding(cradle_hunt, "c1", cradle, minutes=627)]},
                [shell_hunt, cradle_hunt], store, hook, now=START + timedelta(hours=11))

    assert later.updated == [shell_id]  # ten hours apart: lineage, not the 2-hour window
    assert not later.opened
    text = " ".join(texts(hook.payloads[-1]))
    assert f"Update to {shell_id}" in text
    assert f"launched by powershell.exe (pid 19324), a process of {shell_id}" in text


def test_high_incidents_beyond_one_runs_posts_are_posted_on_their_own_by_the_next_run(
        store: IncidentStore, hook: WebhookReceiver) -> None:
    decoy, attack = hunt(11, "Low", "Decoy noise"), hunt(12, "High", "Real shell")
    decoys = [finding(decoy, f"d{n}", {"DeviceId": f"{n:040x}", "DeviceName": f"ws-{n:03d}",
                                       "ReportId": n}) for n in range(40)]
    real = [finding(attack, f"a{n}", {"DeviceId": f"{n + 100:040x}",
                                      "DeviceName": f"victim-{n:02d}", "ReportId": 500 + n})
            for n in range(14)]
    settings = IncidentSettings(storm_limit=10)
    first = run({decoy.id: decoys, attack.id: real}, [decoy, attack], store, hook,
                settings=settings)

    assert len(hook.payloads) == 11  # the summary and 10 High incidents: the run's limit
    summary = " ".join(texts(hook.payloads[0]))
    assert all(f"victim-{n:02d}" in summary for n in range(14))  # every High one is named
    run({}, [decoy, attack], store, hook, now=START + timedelta(hours=2), settings=settings)
    alone = {title(p).rsplit(" on ", 1)[1] for p in hook.payloads[1:]}
    assert alone == {f"victim-{n:02d}" for n in range(14)}  # the other 4 by the next run
    assert len(first.opened) == 54
