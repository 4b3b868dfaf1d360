"""Table schemas: the generated files, both flavours, the tenant's cache, and `schema pull`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from devtools.fake_graph import FakeGraph, hunting_results
from devtools.fake_loganalytics import FakeLogAnalytics
from devtools.identity import IdentityServer, Reply, Request
from shared.cli import main
from shared.schemas import (
    builtin_schemas,
    clear_cache,
    function_schemas,
    table_schemas,
)
from tools.gen_schemas import ListingError, parse_listing
from tools.gen_schemas import main as generate

WORKSPACE = "5e0c1b2a-0000-4000-8000-00000000beef"
DEFENDER_XDR = [
    "AlertEvidence", "AlertInfo", "BehaviorEntities", "BehaviorInfo", "CloudAppEvents",
    "DeviceEvents", "DeviceFileCertificateInfo", "DeviceFileEvents", "DeviceImageLoadEvents",
    "DeviceInfo", "DeviceLogonEvents", "DeviceNetworkEvents", "DeviceNetworkInfo",
    "DeviceProcessEvents", "DeviceRegistryEvents", "DeviceTvmSoftwareInventory",
    "DeviceTvmSoftwareVulnerabilities", "EmailAttachmentInfo", "EmailEvents",
    "EmailPostDeliveryEvents", "EmailUrlInfo", "IdentityDirectoryEvents", "IdentityInfo",
    "IdentityLogonEvents", "IdentityQueryEvents", "UrlClickEvents", "AADSignInEventsBeta",
    "OAuthAppInfo", "ExposureGraphNodes", "ExposureGraphEdges"]
SENTINEL_ONLY = [
    "SecurityEvent", "SigninLogs", "AADNonInteractiveUserSignInLogs", "AuditLogs",
    "OfficeActivity", "AzureActivity", "Syslog", "CommonSecurityLog", "DnsEvents", "Event",
    "Heartbeat", "SecurityAlert", "SecurityIncident", "ThreatIntelligenceIndicator", "W3CIISLog",
    "BehaviorAnalytics", "AzureDiagnostics", "VMConnection", "Watchlist", "WindowsEvent"]


def test_generated_files_are_in_step_with_the_listing() -> None:
    assert generate(["--check"]) == 0


def test_the_four_original_device_tables_are_unchanged() -> None:
    defender = builtin_schemas("defender")
    counts = {t: len(defender[t]) for t in ("DeviceProcessEvents", "DeviceNetworkEvents",
                                            "DeviceEvents", "DeviceFileEvents")}
    assert counts == {"DeviceProcessEvents": 68, "DeviceNetworkEvents": 46, "DeviceEvents": 67,
                      "DeviceFileEvents": 59}
    process = list(defender["DeviceProcessEvents"].items())
    assert process[:3] == [("Timestamp", "datetime"), ("DeviceId", "string"),
                           ("DeviceName", "string")]
    assert process[-1] == ("ProcessUniqueId", "string")
    assert defender["DeviceProcessEvents"]["ReportId"] == "long"


def test_each_flavour_has_its_tables() -> None:
    defender, sentinel = builtin_schemas("defender"), builtin_schemas("sentinel")
    assert set(DEFENDER_XDR) <= set(defender)
    assert set(DEFENDER_XDR) | set(SENTINEL_ONLY) <= set(sentinel)
    assert not set(SENTINEL_ONLY) & set(defender)


def test_sentinel_form_of_defender_tables_is_derived() -> None:
    logon = builtin_schemas("sentinel")["DeviceLogonEvents"]
    assert list(logon)[:5] == ["TenantId", "TimeGenerated", "SourceSystem", "Type", "MachineGroup"]
    assert "Timestamp" not in logon
    assert "MachineGroup" not in builtin_schemas("sentinel")["EmailEvents"]
    assert set(builtin_schemas("defender")["DeviceLogonEvents"]) - {"Timestamp"} < set(logon)


def test_identity_info_differs_between_flavours() -> None:
    defender = builtin_schemas("defender")["IdentityInfo"]
    sentinel = builtin_schemas("sentinel")["IdentityInfo"]
    assert "AccountUpn" in defender
    assert "AccountUPN" not in defender
    assert "AccountUPN" in sentinel
    assert "AccountUpn" not in sentinel
    assert "Timestamp" in defender
    assert "TimeGenerated" in sentinel


def test_watchlist_function_is_sentinel_only() -> None:
    assert "_GetWatchlist(watchlistAlias:string)" in function_schemas("sentinel")
    assert function_schemas("defender") == {}


def test_listing_refuses_duplicates_and_unknown_types() -> None:
    with pytest.raises(ListingError, match="listed twice"):
        parse_listing("[sentinel]\nT: A B a\n")
    with pytest.raises(ListingError, match="bad column"):
        parse_listing("[sentinel]\nT: A:zz\n")
    with pytest.raises(ListingError, match="unknown define"):
        parse_listing("[xdr]\nT: @NOPE\n")


def _hunt(folder: Path, query: str) -> None:
    folder.mkdir(exist_ok=True)
    (folder / "custom.yaml").write_text(
        "id: 00000000-0000-0000-0000-000000000001\nname: custom\nsource: sentinel\n"
        "query: |\n" + "".join(f"  {line}\n" for line in query.splitlines()))


def _validate(folder: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    rules = folder.parent / "no-rules"
    rules.mkdir(exist_ok=True)
    code = main(["validate", "--hunts", str(folder), "--suppressions", str(rules),
                 "--format", "json"])
    return code, json.loads(capsys.readouterr().out)


def _getschema(request: Request) -> Reply:
    query = request.json()["Query"]
    assert "DeviceLogonEvents | getschema" in query
    assert query.startswith("union isfuzzy=true ")
    rows = [{"TableName": "DeviceLogonEvents", "ColumnName": name, "ColumnType": kind,
             "ColumnOrdinal": i}
            for i, (name, kind) in enumerate([("Timestamp", "datetime"), ("DeviceId", "string"),
                                              ("BrandNewColumn", "System.Int64")])]
    return Reply(200, hunting_results([("TableName", "String"), ("ColumnName", "String"),
                                       ("ColumnType", "String"), ("ColumnOrdinal", "Int32")],
                                      rows))


def test_schema_pull_reads_both_services_into_the_cache_that_validate_uses(
        identity: IdentityServer, own_cache: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    hunts = tmp_path / "hunts"
    _hunt(hunts, "Contoso_Proxy_CL\n| where Verdict_s == 'block'\n"
                 "| project TimeGenerated, Url_s, Verdict_s")
    code, report = _validate(hunts, capsys)
    assert code == 1
    assert report["errors"][0]["code"] == "KS204"  # unknown before the pull

    custom = {"TimeGenerated": "datetime", "Url_s": "string", "Verdict_s": "string",
              "Bytes_d": "real"}
    with FakeGraph() as graph, FakeLogAnalytics(WORKSPACE, metadata={
            "Contoso_Proxy_CL": custom, "SecurityEvent": {"TimeGenerated": "datetime"}}) as logs:
        graph.handler = _getschema
        monkeypatch.setenv("HUNTWIRE_GRAPH_ENDPOINT", graph.url)
        monkeypatch.setenv("HUNTWIRE_LOGS_ENDPOINT", logs.url)
        monkeypatch.setenv("HUNTWIRE_SENTINEL_WORKSPACE_ID", WORKSPACE)
        assert main(["schema", "pull", "--out", str(own_cache), "--format", "json"]) == 0
        assert [r.path for r in logs.requests] == [f"/v1/workspaces/{WORKSPACE}/metadata"]
    assert json.loads(capsys.readouterr().out)["tables"] == {"defender": 1, "sentinel": 2}
    cache = json.loads(own_cache.read_text())
    assert cache["tables"]["sentinel"]["Contoso_Proxy_CL"] == custom
    assert cache["tables"]["defender"]["DeviceLogonEvents"]["BrandNewColumn"] == "long"

    clear_cache()
    assert table_schemas("sentinel")["Contoso_Proxy_CL"] == custom
    assert "DeviceLogonEvents" in table_schemas("sentinel")  # built-in tables stay
    assert table_schemas("defender")["DeviceLogonEvents"]["BrandNewColumn"] == "long"
    code, report = _validate(hunts, capsys)
    assert (code, report["errors"]) == (0, [])


def test_the_local_engine_runs_a_custom_table_from_the_cache(own_cache: Path,
                                                             tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from shared.hunt import load_hunts
    from shared.schema_pull import write_cache
    from shared.sources.local import LocalSource
    from shared.window import Window

    write_cache(own_cache, {"sentinel": {"Contoso_Proxy_CL": {
        "TimeGenerated": "datetime", "Url_s": "string", "Verdict_s": "string"}}})
    clear_cache()
    events = tmp_path / "proxy.jsonl"
    events.write_text("\n".join(json.dumps(e) for e in [
        {"TimeGenerated": "2026-11-20T10:00:00Z", "Url_s": "http://a.example",
         "Verdict_s": "block"},
        {"TimeGenerated": "2026-11-20T10:05:00Z", "Url_s": "http://b.example",
         "Verdict_s": "allow"},
    ]) + "\n")
    hunts = tmp_path / "hunts"
    _hunt(hunts, "Contoso_Proxy_CL | where Verdict_s == 'block' | project TimeGenerated, Url_s")
    (hunt,) = load_hunts(hunts).hunts
    end = datetime(2026, 11, 20, 12, tzinfo=UTC)
    result = LocalSource({"Contoso_Proxy_CL": events}).run(
        hunt, Window(end - timedelta(hours=4), end))
    assert [row["Url_s"] for row in result.rows] == ["http://a.example"]
