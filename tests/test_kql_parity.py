"""Local-engine parity found on real Azure-Sentinel hunting files (issue 23, second measurement).

Expected rows are written by hand from Microsoft's KQL reference: the string type has no null
("null values" page: strings are empty, test them with isempty), so an outer join's unmatched
side is "" in its string columns and null in the others; `(T)` is `T`; an aggregate may sit under
an element access in `summarize`. Every query also passes Microsoft's parser.
"""

from __future__ import annotations

import re
import shutil
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from shared.sources.base import QueryError
from shared.sources.local import LocalSource
from tests.kql_cases import diagnostics, run_case

LOGONS = """datatable(User:string, Host:string, Port:long)[
    "ann", "h1", 445, "bob", "h2", 3389, "cat", "h3", 22]"""
SEEN = """datatable(User:string, Seen:string, Count:long)[
    "bob", "yes", 2, "dan", "yes", 5]"""

CASES: dict[str, tuple[str, list[dict[str, Any]]]] = {
    # Kusto strings are never null: an unmatched right row reads "" (and `== ""` holds); a long
    # column of the unmatched side is null.
    "leftouter_unmatched_strings_are_empty": (
        f"{LOGONS} | join kind=leftouter ({SEEN}) on User "
        '| where Seen == "" | project User, User1, Seen, Count | order by User asc',
        [{"User": "ann", "User1": "", "Seen": "", "Count": None},
         {"User": "cat", "User1": "", "Seen": "", "Count": None}]),
    "rightouter_unmatched_strings_are_empty": (
        f"{LOGONS} | join kind=rightouter ({SEEN}) on User "
        "| project User, Port, User1, Seen | order by User1 asc",
        [{"User": "bob", "Port": 3389, "User1": "bob", "Seen": "yes"},
         {"User": "", "Port": None, "User1": "dan", "Seen": "yes"}]),
    "fullouter_unmatched_strings_are_empty_on_either_side": (
        f"{LOGONS} | where User != \"cat\" | join kind=fullouter ({SEEN}) on User "
        "| project User, Host, User1, Seen, Count | order by User asc, User1 asc",
        [{"User": "", "Host": "", "User1": "dan", "Seen": "yes", "Count": 5},
         {"User": "ann", "Host": "h1", "User1": "", "Seen": "", "Count": None},
         {"User": "bob", "Host": "h2", "User1": "bob", "Seen": "yes", "Count": 2}]),
    "lookup_unmatched_strings_are_empty": (
        f"{LOGONS} | lookup ({SEEN}) on User | where isempty(Seen) and isnull(Count) "
        "| project User, Seen | order by User asc",
        [{"User": "ann", "Seen": ""}, {"User": "cat", "Seen": ""}]),
    "inner_join_is_unchanged": (
        f"{LOGONS} | join kind=inner ({SEEN}) on User | project User, Seen, Count",
        [{"User": "bob", "Seen": "yes", "Count": 2}]),
    # an aggregate under an element access; unnamed, Kusto names it list_Host_0
    "aggregate_inside_an_element_access": (
        f"{LOGONS} | summarize First = tostring(make_list(Host)[0]), make_list(Port)[0], "
        "Missing = make_list(Host)[5], n = count() by User | where User == \"bob\"",
        [{"User": "bob", "First": "h2", "list_Port_0": 3389, "Missing": None, "n": 1}]),
    # a statement that is one parenthesised tabular expression is that expression
    "parenthesised_statement_is_its_expression": (
        f"let port = 22;\n(union ({LOGONS} | where Port == port), ({SEEN} | where Count > 4) "
        "| project User)",
        [{"User": "cat"}, {"User": "dan"}]),
    "parenthesised_source_then_pipe": (
        f"({LOGONS} | where Port > 1000) | project User",
        [{"User": "bob"}]),
    # a string column one union branch lacks is "" there; a long one is null
    "union_missing_string_column_is_empty": (
        f"union ({LOGONS} | where User == \"ann\" | project User, Port), "
        f"({SEEN} | where User == \"dan\" | project Seen) "
        '| where User == "" or Seen == "" | project User, Port, Seen | order by User asc',
        [{"User": "", "Port": None, "Seen": "yes"}, {"User": "ann", "Port": 445, "Seen": ""}]),
    # the reference's examples: without a prefix, the IP-prefix written in the addresses (else 32)
    "ipv4_is_match_without_a_prefix": (
        'print a = ipv4_is_match("127.0.0.1", "127.0.0.1"), '
        'b = ipv4_is_match("192.168.1.1/24", "192.168.1.255/24"), '
        'c = ipv4_is_match("192.168.1.1", "192.168.1.255"), '
        'd = ipv4_is_match("192.168.1.1", "192.168.1.255", 24)',
        [{"a": True, "b": True, "c": False, "d": True}]),
    # `view` marks a function for `union *` only; the body may be one parenthesised pipeline
    "view_function_with_a_parenthesised_body": (
        f"let Logons = {LOGONS};\n"
        "let above = view (minimum:long) { (Logons | where Port > minimum | project User); };\n"
        "above(1000) | order by User asc",
        [{"User": "bob"}]),
    # weights repeat values: a is [1, 5, 5, 5, 9], b is ten 2s and one 8 (nearest rank, as
    # `percentile`); unnamed, Microsoft's parser names it percentile_v_90
    "percentilesw_repeats_each_value_by_its_weight": (
        'datatable(v:long, w:long, k:string)[1, 1, "a", 5, 3, "a", 9, 1, "a", '
        '2, 10, "b", 8, 1, "b"] '
        "| summarize p = percentilesw(v, w, 50), percentilesw(v, w, 90) by k | order by k asc",
        [{"k": "a", "p": 5, "percentile_v_90": 9}, {"k": "b", "p": 2, "percentile_v_90": 2}]),
    # toscalar() of a scalar expression is its value
    "toscalar_of_a_scalar_expression": (
        "let low = toscalar(datatable(v:long)[2, 4] | summarize min(v));\n"
        "let high = toscalar(datatable(v:long)[2, 4] | summarize max(v));\n"
        "let fence = toscalar(high + (1.5 * (high - low)));\nprint x = fence",
        [{"x": 7.0}]),
    # "The parse pattern can start with ColumnName" (reference): it takes the text up to the
    # first literal; a row that does not match is "" (a failed long is null, all-or-nothing)
    "parse_pattern_starting_with_a_column": (
        'datatable(P:string)["D:\\\\x\\\\y", "nodrive", "12-rest-x", "ab-c"] '
        '| parse P with Drive "\\\\" * | parse P with N:long "-" Rest "-" * '
        "| project Drive, N, Rest",
        [{"Drive": "D:", "N": None, "Rest": ""}, {"Drive": "", "N": None, "Rest": ""},
         {"Drive": "", "N": 12, "Rest": "rest"}, {"Drive": "", "N": None, "Rest": ""}]),
    "new_guid_is_a_guid_string": (
        "print g = new_guid() | extend ok = tostring(g) matches regex "
        '"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$" | project ok',
        [{"ok": True}]),
}


@pytest.fixture(scope="module")
def engine() -> LocalSource:
    return LocalSource({})


def run_local(engine: LocalSource, query: str) -> list[dict[str, Any]]:
    return run_case(engine, query, hunt_id="00000000-0000-4000-8000-000000000023", name="parity")


@cache
def parser_diagnostics() -> dict[str, list[str]]:
    return diagnostics(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_local_result_is_the_documented_one(engine: LocalSource, name: str) -> None:
    query, expected = CASES[name]
    assert run_local(engine, query) == expected


@pytest.mark.skipif(shutil.which("node") is None, reason="Microsoft's KQL parser runs in node")
@pytest.mark.parametrize("name", sorted(CASES))
def test_microsofts_parser_accepts_the_same_query(name: str) -> None:
    assert parser_diagnostics()[name] == []


@pytest.mark.parametrize(("query", "named"), [
    ('datatable(Folders:string)["a"] | extend folders = Folders',
     "two columns whose names differ only in letter case ('Folders' and 'folders'"),
])
def test_refusals_name_the_construct(engine: LocalSource, query: str, named: str) -> None:
    with pytest.raises(QueryError) as raised:
        run_local(engine, query)
    message = raised.value.message
    assert re.fullmatch(r"local engine cannot run .+ \(not your query\)", message)
    assert named in message


def test_an_absent_string_field_of_an_event_is_empty(tmp_path: Path) -> None:
    """Kusto stores an absent string as "": `== ""` holds; an absent long stays null."""
    events = tmp_path / "DeviceProcessEvents.jsonl"
    events.write_text('{"Timestamp": "2026-11-02T10:00:00Z", "DeviceName": "d1"}\n',
                      encoding="utf-8")
    rows = run_local(LocalSource({"DeviceProcessEvents": events}),
                     'DeviceProcessEvents | where ProcessCommandLine == "" '
                     "| project DeviceName, ProcessCommandLine, ProcessId")
    assert rows == [{"DeviceName": "d1", "ProcessCommandLine": "", "ProcessId": None}]


def test_text_used_as_a_timespan_is_refused_in_words(engine: LocalSource) -> None:
    """Kusto's d.hh:mm:ss text compared with a timespan: refused by name, never a DuckDB trace."""
    with pytest.raises(QueryError) as raised:
        run_local(engine, 'print e = dayofweek(datetime(2026-11-02)) == "1.00:00:00"')
    assert raised.value.message == ("local engine cannot run the string '1.00:00:00' used as a "
                                    "timespan (DuckDB cannot convert that text) (not your query)")


@pytest.mark.parametrize("ids", ["project Sid = AccountSID", "distinct Sid = AccountSID"])
def test_an_unknown_column_deep_in_a_join_is_named(engine: LocalSource, ids: str) -> None:
    """DuckDB's binder finds it, not duckdb-kql's schema: still one line naming the column."""
    with pytest.raises(QueryError) as raised:
        run_local(engine, f"let ids = IdentityInfo | {ids};\n"
                  "DeviceEvents | join kind=leftouter ids on $left.AccountSid == $right.Sid")
    assert raised.value.message.startswith("local engine: unknown column 'AccountSID'")
