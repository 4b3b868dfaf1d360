"""`huntwire schema pull` does not trust its answer (issue 24 #8, issue 22 #14): capped, checked,
refused whole and unwritten when malformed, credentials never printed; a tampered cache is one
line for validate and eval, and pull repairs it. Against the local Graph and Log Analytics
stand-ins (devtools/) and a small streaming server of this file's own."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from devtools.fake_graph import FakeGraph, hunting_results
from devtools.fake_loganalytics import FakeLogAnalytics
from devtools.identity import IdentityServer, Reply, Request
from shared.cli import main
from shared.schemas import CACHE_FORMAT, clear_cache, read_cache
from shared.schemas.cache_check import MAX_ANSWER_BYTES, SchemaCacheError

WORKSPACE = "5e0c1b2a-0000-4000-8000-00000000beef"
COLUMNS = [("TableName", "String"), ("ColumnName", "String"), ("ColumnType", "String"),
           ("ColumnOrdinal", "Int32")]


@pytest.fixture
def graph(identity: IdentityServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGraph]:
    with FakeGraph() as server:
        monkeypatch.setenv("HUNTWIRE_GRAPH_ENDPOINT", server.url)
        yield server


def _rows(*rows: tuple[str, str, str]) -> Reply:
    return Reply(200, hunting_results(COLUMNS, [
        {"TableName": t, "ColumnName": c, "ColumnType": k, "ColumnOrdinal": i}
        for i, (t, c, k) in enumerate(rows)]))


def _pull(own_cache: Path, *flags: str) -> int:
    return main(["schema", "pull", "--out", str(own_cache), *flags])


def test_a_good_answer_is_written(graph: FakeGraph, own_cache: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    graph.script(_rows(("DeviceEvents", "Timestamp", "datetime"),
                       ("DeviceEvents", "Extra_1", "System.Int64")))
    assert _pull(own_cache, "--source", "defender") == 0
    assert read_cache(own_cache)["defender"] == {
        "DeviceEvents": {"Timestamp": "datetime", "Extra_1": "long"}}
    assert "defender: 1 table(s)" in capsys.readouterr().out


@pytest.mark.parametrize(("answer", "reason"), [
    ({"results": ["DeviceEvents", "Timestamp"]}, "row 1 is 'DeviceEvents', not an object"),
    ({"results": "nope"}, "'results' is 'nope', not a list"),
    ({"schema": []}, "'results' is null"),
    (_rows(("DeviceEvents; COPY t TO '/tmp/x'", "A", "string")).body, "not a plain identifier"),
    (_rows(("DeviceEvents", "A\") TO '/tmp/x' --", "string")).body, "not a plain identifier"),
    (_rows(("DeviceEvents", "A", "varchar); DROP")).body, "is not a KQL type"),
    (_rows(("DeviceEvents", "A", "string"), ("1Table", "A", "string")).body,
     "not a plain identifier"),
])
def test_a_malformed_answer_writes_nothing(answer: Any, reason: str, graph: FakeGraph,
                                           own_cache: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    graph.script(Reply(200, answer))
    assert _pull(own_cache, "--source", "defender") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "Traceback" not in err
    assert reason in err
    assert "nothing was written" in err
    assert not own_cache.exists()


def test_a_malformed_answer_leaves_a_good_cache_alone(graph: FakeGraph, own_cache: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    graph.script(_rows(("DeviceEvents", "Timestamp", "datetime")),
                 Reply(200, {"results": [1, 2, 3]}))
    assert _pull(own_cache, "--source", "defender") == 0
    before = own_cache.read_bytes()
    assert _pull(own_cache, "--source", "defender") == 1
    assert own_cache.read_bytes() == before


def test_too_many_columns_are_refused(graph: FakeGraph, own_cache: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    graph.script(_rows(*[("DeviceEvents", f"C{i}", "string") for i in range(1001)]))
    assert _pull(own_cache, "--source", "defender") == 1
    assert "1,001 columns, more than the 1,000 accepted" in capsys.readouterr().err
    assert not own_cache.exists()


def test_an_answer_over_the_cap_is_refused_by_its_length(graph: FakeGraph, own_cache: Path,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    graph.script(Reply(200, b"{" + b" " * (MAX_ANSWER_BYTES + 10) + b"}"))
    assert _pull(own_cache, "--source", "defender") == 1
    assert "over 20 MB; refused" in capsys.readouterr().err
    assert not own_cache.exists()


class _Endless(BaseHTTPRequestHandler):
    """Answers 200 with a chunked body of 64 MB (no Content-Length) and counts what it sent."""

    protocol_version = "HTTP/1.1"
    sent = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunk = b" " * (1 << 20)
        try:
            for _ in range(64):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                type(self).sent += len(chunk)
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass  # the client stopped reading

    def log_message(self, format: str, *args: Any) -> None:
        return


def test_a_streamed_answer_is_read_only_up_to_the_cap(identity: IdentityServer, own_cache: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Endless)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("HUNTWIRE_GRAPH_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
        assert _pull(own_cache, "--source", "defender") == 1
    finally:
        server.shutdown()
        server.server_close()
    assert "over 20 MB; refused" in capsys.readouterr().err
    assert _Endless.sent < 48 * (1 << 20)  # stopped near the cap, not at the end of 64 MB
    assert not own_cache.exists()


def _echo_authorization(request: Request) -> Reply:
    echoed = request.headers["authorization"]
    return Reply(401, {"error": {"code": "InvalidAuthenticationToken",
                                 "message": f"Token rejected: {echoed} (header echoed)"}})


def test_a_401_echoing_the_token_never_prints_it(graph: FakeGraph, own_cache: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    graph.script(_echo_authorization)
    assert _pull(own_cache, "--source", "defender") == 1
    (request,) = graph.requests
    token = request.headers["authorization"].split()[1]
    out, err = capsys.readouterr()
    assert token not in out + err
    assert token[:20] not in out + err
    assert "HTTP 401: InvalidAuthenticationToken Token rejected: Bearer <redacted>" in err
    assert not own_cache.exists()


def test_a_plain_text_error_with_a_bearer_token_and_escapes_is_cleaned(
        graph: FakeGraph, own_cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    graph.script(Reply(403, "denied for Authorization: Bearer abc.def-ghi\x1b[31m red"))
    assert _pull(own_cache, "--source", "defender") == 1
    err = capsys.readouterr().err
    assert "abc.def-ghi" not in err
    assert "\x1b" not in err
    assert "Bearer <redacted>" in err


def test_sentinel_without_a_workspace_is_one_line_and_writes_nothing(
        identity: IdentityServer, own_cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _pull(own_cache, "--source", "sentinel") == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert "HUNTWIRE_SENTINEL_WORKSPACE_ID" in err
    assert not own_cache.exists()


@pytest.mark.parametrize(("metadata", "reason"), [
    ({"tables": [{"name": "T_CL", "columns": ["a", "b"]}]}, "list of column objects"),
    ({"tables": {"T_CL": {}}}, "'tables' is dict, not a list"),
    ({"tables": [{"name": "T_CL'); COPY", "columns": []}]}, "not a plain identifier"),
])
def test_a_malformed_workspace_answer_writes_nothing(metadata: Any, reason: str,
                                                    identity: IdentityServer, own_cache: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    with FakeLogAnalytics(WORKSPACE) as logs:
        logs.script(Reply(200, metadata))
        monkeypatch.setenv("HUNTWIRE_LOGS_ENDPOINT", logs.url)
        monkeypatch.setenv("HUNTWIRE_SENTINEL_WORKSPACE_ID", WORKSPACE)
        assert _pull(own_cache, "--source", "sentinel") == 1
    err = capsys.readouterr().err
    assert reason in err
    assert err.count("\n") == 1
    assert not own_cache.exists()


TAMPERED = [
    "{not json",
    json.dumps({"format": "something-else", "tables": {}}),
    json.dumps({"format": CACHE_FORMAT, "tables": {"sentinel": {"T": "not columns"}}}),
    json.dumps({"format": CACHE_FORMAT, "tables": {"sentinel": {
        "T": {"x\" VARCHAR); COPY (SELECT 1) TO '/tmp/pwned.csv'; --": "string"}}}}),
    json.dumps({"format": CACHE_FORMAT, "tables": {"defender": {"T": {"A": "text"}}}}),
    "[" * 100_000,
]


@pytest.mark.parametrize("content", TAMPERED, ids=range(len(TAMPERED)))
def test_a_tampered_cache_is_one_line_for_validate_and_eval(
        content: str, own_cache: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    own_cache.write_text(content, encoding="utf-8")
    clear_cache()
    with pytest.raises(SchemaCacheError):
        read_cache(own_cache)
    events = tmp_path / "e.jsonl"
    events.write_text('{"Timestamp": "2026-11-20T10:00:00Z"}\n', encoding="utf-8")
    for command in (["validate"], ["eval", "--events", f"DeviceProcessEvents={events}"]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        assert "Traceback" not in err
        assert str(own_cache) in err
        assert "huntwire schema pull" in err


def test_schema_pull_repairs_a_tampered_cache(graph: FakeGraph, own_cache: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    own_cache.write_text("{not json", encoding="utf-8")
    graph.script(_rows(("DeviceEvents", "Timestamp", "datetime")))
    assert _pull(own_cache, "--source", "defender") == 0
    err = capsys.readouterr().err
    assert "old cache was unusable and is replaced" in err
    assert "pull sentinel again" in err
    assert read_cache(own_cache) == {"defender": {"DeviceEvents": {"Timestamp": "datetime"}},
                                     "sentinel": {}}
    assert list(own_cache.parent.glob(".schemas.cache.json.*")) == []  # no temporary left


def test_the_default_cache_is_git_ignored_and_not_deployed(repo: Path) -> None:
    from shared.schemas import DEFAULT_CACHE

    # Beside function_app.py, where validate (and the azd hooks) look; tenant data, so never
    # committed, and not shipped: the function reads the manifest, not the schemas.
    assert DEFAULT_CACHE.parent == repo
    ignored = (repo / ".gitignore").read_text(encoding="utf-8").splitlines()
    not_deployed = (repo / ".funcignore").read_text(encoding="utf-8").splitlines()
    assert f"/{DEFAULT_CACHE.name}" in ignored
    assert DEFAULT_CACHE.name in not_deployed


def test_all_without_a_workspace_pulls_defender_and_says_so(graph: FakeGraph, own_cache: Path,
                                                            capsys: pytest.CaptureFixture[str]
                                                            ) -> None:
    graph.script(_rows(("DeviceEvents", "Timestamp", "datetime")))
    assert _pull(own_cache, "--format", "json") == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["tables"] == {"defender": 1}
    assert "HUNTWIRE_SENTINEL_WORKSPACE_ID is not set; Sentinel skipped" in err
    assert read_cache(own_cache)["sentinel"] == {}
