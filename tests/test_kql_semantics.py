"""Pin the local engine's semantics for every KQL feature the reverse-shell hunts rely on.

Each query runs through ``shared.sources.local.LocalSource`` (duckdb-kql plus huntwire's patches),
the engine behind `huntwire eval`, and every query is also checked with Microsoft's parser
(Kusto.Language), so a feature used by the hunts is accepted by Kusto AND behaves locally the way
Kusto documents it. The table "KQL features the local engine is trusted for" in docs/hunts.md
lists these tests.
"""

from __future__ import annotations

import base64
import ipaddress
import shutil
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import pytest

from shared.kql_check import analyse
from shared.sources.base import QueryError
from shared.sources.local import LocalSource
from tests.kql_cases import diagnostics, run_case

SHELL_TEXT = "$c=New-Object Net.Sockets.TcpClient(\"10.0.0.1\",443);iex $d"
UTF16 = base64.b64encode(SHELL_TEXT.encode("utf-16-le")).decode()
UTF8 = base64.b64encode(SHELL_TEXT.encode("utf-8")).decode()
NOT_UTF8 = base64.b64encode("café".encode("utf-16-le")).decode()  # 0xE9 0x00 is not UTF-8
ENC_FLAG = (r"(?i)(?:^|\s)[-/\x{2013}]e(?:c|n|nc|nco|ncod|ncode|ncoded|ncodedc|ncodedco|ncodedcom"
            r"|ncodedcomm|ncodedcomma|ncodedcomman|ncodedcommand)?\s+([A-Za-z0-9+/]{16,}={0,2})")

PROCESSES = """datatable(DeviceId:string, Timestamp:datetime, ReportId:long,
    InitiatingProcessId:long, FileName:string, InitiatingProcessFileName:string)[
    "d1", datetime(2026-11-02T10:05:00Z), 2, 10, "powershell.exe", "cmd.exe",
    "d1", datetime(2026-11-02T10:00:00Z), 1, 10, "powershell.exe", "cmd.exe",
    "d1", datetime(2026-11-02T10:09:00Z), 3, 10, "powershell.exe", "cmd.exe",
    "d2", datetime(2026-11-02T11:00:00Z), 4, 20, "pwsh.exe", "services.exe"]"""
PARENTS = """datatable(DeviceId:string, ProcessId:long, ParentCommandLine:string)[
    "d1", 10, "cmd.exe /c run.cmd", "d2", 99, "unrelated"]"""

# name -> (query, expected rows); every query is also run through Microsoft's parser
CASES: dict[str, tuple[str, list[dict[str, Any]]]] = {
    "equality_tilde_and_in_tilde_ignore_case": (
        'print a = "PowerShell.EXE" =~ "powershell.exe", b = "PWSH.exe" in~ ("pwsh.exe", "x"), '
        'c = "PWSH.exe" in ("pwsh.exe")',
        [{"a": True, "b": True, "c": False}]),
    "has_is_whole_term_case_insensitive": (
        'print a = "(New-Object Net.WebClient)" has "webclient", b = "WebClients" has "webclient", '
        'c = "x.y" has_any ("Y", "z")',
        [{"a": True, "b": False, "c": True}]),
    "contains_ignores_case": (
        'print a = "$Client = New-Object" contains "$client = new-object", '
        'b = "abc" contains_cs "B"',
        [{"a": True, "b": False}]),
    "matches_regex_is_case_sensitive_unless_i_flag": (
        'print a = "TcpClient" matches regex "tcpclient", '
        'b = "TcpClient" matches regex "(?i)tcpclient"',
        [{"a": False, "b": True}]),
    "regex_dot_stops_at_newline_and_s_spans_it": (
        'print a = "iex\\nTcpClient" matches regex "iex.TcpClient", '
        'b = "iex\\nTcpClient" matches regex @"iex\\sTcpClient"',
        [{"a": False, "b": True}]),
    "regex_word_boundary": (
        'print a = "(iex $d)" matches regex @"\\biex\\b", b = "$xiex" matches regex @"\\biex\\b", '
        'c = "$iex2" matches regex @"\\biex\\b"',
        [{"a": True, "b": False, "c": False}]),
    "regex_hex_and_code_point_escapes": (
        'print a = "\u2013enc" matches regex @"^[\\x{2013}]enc", b = "\'a\'+\\"b\\"" matches regex '
        '@"[\\x22\\x27]\\+[\\x22\\x27]"',
        [{"a": True, "b": True}]),
    "regex_encoded_command_abbreviations": (
        f'print a = "powershell -ENC {UTF16}" matches regex @"{ENC_FLAG}", '
        f'b = "powershell -EncodedCommand {UTF16}" matches regex @"{ENC_FLAG}", '
        f'c = "powershell -ep bypass {UTF16}" matches regex @"{ENC_FLAG}", '
        f'd = "powershell -ExecutionPolicy {UTF16}" matches regex @"{ENC_FLAG}"',
        [{"a": True, "b": True, "c": False, "d": False}]),
    "extract_returns_the_group_or_empty": (
        f'print a = extract(@"{ENC_FLAG}", 1, "powershell -ec {UTF16}"), '
        'b = isempty(extract(@"-enc\\s+(\\S+)", 1, "powershell -nop")), '
        'c = extract(@"(\\d+)\\.(\\d+)", 2, "v10.42")',
        [{"a": UTF16, "b": True, "c": "42"}]),
    "replace_string_is_literal_and_global": (
        'print a = replace_string("N`e`w-Ob`ject", "`", ""), b = replace_string("a.b.c", ".", "")',
        [{"a": "New-Object", "b": "abc"}]),
    "replace_regex_is_global": (
        'print a = replace_regex("\'Sys\'+\'tem.Net\' + \'.Sockets\'", '
        '@"[\\x22\\x27]\\s*\\+\\s*[\\x22\\x27]", "")',
        [{"a": "'System.Net.Sockets'"}]),
    "base64_decode_utf8_keeps_quotes": (
        f'print a = base64_decode_tostring("{UTF8}")',
        [{"a": SHELL_TEXT}]),
    "base64_decode_utf16le_then_strip_nul": (
        f'print a = replace_regex(base64_decode_tostring("{UTF16}"), @"\\x00", ""), '
        f'b = strlen(base64_decode_tostring("{UTF16}"))',
        [{"a": SHELL_TEXT, "b": 2 * len(SHELL_TEXT)}]),
    "base64_decode_invalid_utf8_or_base64_is_empty": (
        f'print a = isempty(base64_decode_tostring("{NOT_UTF8}")), '
        'b = isempty(base64_decode_tostring("not base64!"))',
        [{"a": True, "b": True}]),
    "reverse_and_strcat": (
        'print a = reverse("tneilCpcT.stekcoS.teN"), b = strcat("a", "\\n", reverse("cb"))',
        [{"a": "Net.Sockets.TcpClient", "b": "a\nbc"}]),
    "iff_isempty_isnotempty": (
        'print a = iff(isnotempty(""), "x", "y"), b = isempty(""), c = iff(1 == 1, "t", "f")',
        [{"a": "y", "b": True, "c": "t"}]),
    "let_function_with_nested_let_and_string_parameter": (
        'let Token = (text:string) { let flag = extract(@"-e\\w*\\s+(\\S+)", 1, text); '
        'iff(isnotempty(flag), flag, "none") }; '
        'print a = Token("pwsh -ec QQBC"), b = Token("pwsh")',
        [{"a": "QQBC", "b": "none"}]),
    "let_scalar_regex_constant": (
        'let Allowed = @"(?i)(^|\\.)windowsupdate\\.com$"; '
        'print a = "DL.WindowsUpdate.com" matches regex Allowed, '
        'b = "windowsupdate.com.evil.example" matches regex Allowed',
        [{"a": True, "b": False}]),
    "parse_ipv4_and_inclusive_between": (
        'let Private = (ip:long) { '
        'ip between (parse_ipv4("10.0.0.0") .. parse_ipv4("10.255.255.255")) }; '
        'print a = parse_ipv4("13.107.6.152"), b = Private(parse_ipv4("10.255.255.255")), '
        'c = Private(parse_ipv4("11.0.0.0")), d = isnull(parse_ipv4("::ffff:10.1.2.3")), '
        'e = isnull(parse_ipv4("2603:1006::1")), f = isnull(parse_ipv4(""))',
        [{"a": int(ipaddress.IPv4Address("13.107.6.152")), "b": True, "c": False, "d": True,
          "e": True, "f": True}]),
    "null_guard_before_not": (
        'datatable(ip:string)["10.1.1.1", "8.8.8.8", "fe80::1"] '
        '| extend n = parse_ipv4(ip) '
        '| where isnull(n) '
        'or not(n between (parse_ipv4("10.0.0.0") .. parse_ipv4("10.255.255.255"))) '
        '| project ip',
        [{"ip": "8.8.8.8"}, {"ip": "fe80::1"}]),
    "tolower": ('print a = tolower("WindowsUpdate.COM")', [{"a": "windowsupdate.com"}]),
    "summarize_arg_min_star_keeps_the_first_row_and_counts": (
        f"{PROCESSES} | summarize arg_min(Timestamp, *), n = count(), LastSeen = max(Timestamp) "
        "by DeviceId | project DeviceId, ReportId, n, LastSeen | order by DeviceId asc",
        [{"DeviceId": "d1", "ReportId": 1, "n": 3,
          "LastSeen": datetime(2026, 11, 2, 10, 9, tzinfo=UTC)},
         {"DeviceId": "d2", "ReportId": 4, "n": 1,
          "LastSeen": datetime(2026, 11, 2, 11, 0, tzinfo=UTC)}]),
    "join_leftouter_on_mixed_keys_keeps_unmatched_rows": (
        f"{PROCESSES} | where ReportId in (1, 4) | join kind=leftouter ({PARENTS}) "
        "on DeviceId, $left.InitiatingProcessId == $right.ProcessId "
        "| project ReportId, Parent = iff(isnotempty(ParentCommandLine), ParentCommandLine, "
        "InitiatingProcessFileName) | order by ReportId asc",
        [{"ReportId": 1, "Parent": "cmd.exe /c run.cmd"},
         {"ReportId": 4, "Parent": "services.exe"}]),
    # -- issue 15: constructs of the SOC's own hunts (shared/kql_local/) --
    "makeset_and_makelist_are_make_set_and_make_list": (
        f"{PROCESSES} | where DeviceId == \"d2\" "
        "| summarize makeset(FileName), makelist(InitiatingProcessFileName)",
        [{"set_FileName": ["pwsh.exe"], "list_InitiatingProcessFileName": ["services.exe"]}]),
    "make_set_if_and_make_list_if_keep_rows_where_the_predicate_holds": (
        f"{PROCESSES} | summarize s = make_set_if(FileName, ReportId > 3), "
        "l = make_list_if(ReportId, DeviceId == \"d1\") | project s, n = array_length(l)",
        [{"s": ["pwsh.exe"], "n": 3}]),
    "extractjson_is_a_string_typeof_casts": (
        "print a = extractjson(\"$.port\", '{\"port\": 443}'), "
        "b = extract_json(\"$.port\", '{\"port\": 443}', typeof(long)) + 1, "
        "c = extract_json(\"$.missing\", '{\"port\": 443}'), "
        "d = isempty(extractjson(\"$.missing\", '{}')), "
        "e = extract_json(\"$.missing\", '{}', typeof(long))",
        [{"a": "443", "b": 444, "c": "", "d": True, "e": None}]),
    "join_on_two_left_right_keys": (
        f"{PROCESSES} | join kind=inner ({PARENTS}) "
        "on $left.DeviceId == $right.DeviceId, $left.InitiatingProcessId == $right.ProcessId "
        "| project ReportId, ParentCommandLine | order by ReportId asc",
        [{"ReportId": 1, "ParentCommandLine": "cmd.exe /c run.cmd"},
         {"ReportId": 2, "ParentCommandLine": "cmd.exe /c run.cmd"},
         {"ReportId": 3, "ParentCommandLine": "cmd.exe /c run.cmd"}]),
    "parse_extracts_typed_fields": (
        'print s = "user=bob id=5 end" | parse s with "user=" u " id=" i:long " " * '
        "| project u, i",
        [{"u": "bob", "i": 5}]),
    "ipv4_range_functions": (
        'print a = ipv4_is_private("10.1.2.3"), b = ipv4_is_private("8.8.8.8"), '
        'c = ipv4_is_private("172.32.0.1"), d = ipv4_is_private("172.31.255.1"), '
        'e = ipv4_is_in_range("192.168.1.7", "192.168.1.0/24"), '
        'f = ipv4_is_in_range("192.168.2.7", "192.168.1.0/24"), '
        'g = ipv4_is_in_any_range("8.8.8.8", "10.0.0.0/8", "8.8.0.0/16"), '
        'h = ipv4_is_in_any_range("1.1.1.1", dynamic(["10.0.0.0/8", "192.168.0.0/16"])), '
        'i = ipv4_is_match("192.168.1.1", "192.168.1.255", 24), '
        'j = isnull(ipv4_is_private("not an address"))',
        [{"a": True, "b": False, "c": False, "d": True, "e": True, "f": False, "g": True,
          "h": False, "i": True, "j": True}]),
    "parse_path_splits_a_windows_path": (
        'print p = parse_path(@"C:\\Temp\\tool.exe") '
        "| project RootPath = tostring(p.RootPath), DirectoryPath = tostring(p.DirectoryPath), "
        "DirectoryName = tostring(p.DirectoryName), Filename = tostring(p.Filename), "
        "Extension = tostring(p.Extension)",
        [{"RootPath": "C:", "DirectoryPath": "C:\\Temp", "DirectoryName": "Temp",
          "Filename": "tool.exe", "Extension": "exe"}]),
    "make_bag_merges_property_bags": (
        f"{PROCESSES} | where DeviceId == \"d1\" "
        "| summarize b = make_bag(bag_pack(tostring(ReportId), FileName))",
        [{"b": {"1": "powershell.exe", "2": "powershell.exe", "3": "powershell.exe"}}]),
    "deprecated_replace_takes_regex_rewrite_then_text": (
        'print a = replace(@"is (\\d+)", @"was: \\1", "Number is 42"), '
        f'b = replace(@"\\x00", "", base64_decode_tostring("{UTF16}"))',
        [{"a": "Number was: 42", "b": SHELL_TEXT}]),
    "column_ifexists_is_the_column_when_present_else_the_default": (
        f"{PROCESSES} | where ReportId == 4 | extend Extra = 7 "
        '| project a = column_ifexists("FileName", "none"), b = column_ifexists("NoSuch", "none"), '
        'c = column_ifexists("Extra", 0), d = column_ifexists("filename", "case")',
        [{"a": "pwsh.exe", "b": "none", "c": 7, "d": "case"}]),
    "mv_expand_gives_one_row_per_array_element": (
        'print id = 1, a = dynamic([10, 20]) | mv-expand a to typeof(long) | extend b = a + 1',
        [{"id": 1, "a": 10, "b": 11}, {"id": 1, "a": 20, "b": 21}]),
    "tabular_let_function_without_parameters_is_its_pipeline": (
        f"let Shells = () {{ let p = {PROCESSES}; p | where FileName == \"pwsh.exe\" }}; "
        "Shells | project ReportId",
        [{"ReportId": 4}]),
    "tabular_let_function_with_scalar_parameters": (
        f"let ByDevice = (d: string, after: long) {{ {PROCESSES} | where DeviceId == d "
        "and ReportId > after }; ByDevice(\"d1\", 1) | summarize n = count() "
        "| extend m = toscalar(ByDevice(\"d2\", 0) | count)",
        [{"n": 2, "m": 1}]),
    "project_renames_read_the_input_row": (
        f"{PROCESSES} | where ReportId == 4 "
        "| project FileName = InitiatingProcessFileName, InitiatingProcessFileName = FileName",
        [{"FileName": "services.exe", "InitiatingProcessFileName": "pwsh.exe"}]),
}


# Issue 23: constructs of real Azure-Sentinel hunting queries, expected rows written by hand from
# Microsoft's KQL reference (and the output names Microsoft's parser reports).
SIGNERS = 'datatable(FileName:string, ExactSigner:string)["a.exe", "MS", "b.exe", "MS"]'
FILES = """datatable(DeviceId:string, Timestamp:datetime, ReportId:long, FileName:string,
    Signer:string)[
    "d1", datetime(2026-11-02T10:05:00Z), 2, "a.exe", "MS",
    "d1", datetime(2026-11-02T10:00:00Z), 1, "b.exe", "Other",
    "d2", datetime(2026-11-02T11:00:00Z), 4, "a.exe", "MS",
    "d2", datetime(2026-11-02T09:00:00Z), 3, "c.exe", "MS"]"""
PARITY: dict[str, tuple[str, list[dict[str, Any]]]] = {
    # `and` between join keys is the same as `,`: both equalities must hold
    "join_on_column_and_left_right": (
        f"{FILES} | join kind=inner ({SIGNERS}) on FileName and $left.Signer == $right.ExactSigner"
        " | project ReportId | order by ReportId asc",
        [{"ReportId": 2}, {"ReportId": 4}]),
    # between's bounds are any expressions, inclusive at both ends
    "between_datetime_minus_timespan": (
        f"{FILES} | where Timestamp between (datetime(2026-11-02T11:00:00Z) - 1h .. "
        "datetime(2026-11-02T11:00:00Z)) | project ReportId | order by ReportId asc",
        [{"ReportId": 1}, {"ReportId": 2}, {"ReportId": 4}]),
    # a timespan as the high bound: from the low bound to low + timespan
    "between_datetime_and_a_timespan": (
        f"{FILES} | where Timestamp between ((datetime(2026-11-02T10:00:00Z) - 1h) .. 10min) "
        "| project ReportId | order by ReportId asc",
        [{"ReportId": 3}]),  # 09:00 .. 09:10
    "unixtime_seconds_and_datetime_arithmetic": (
        "print a = unixtime_seconds_todatetime(86400), "
        "b = datetime(2026-01-01) + tolong(5) * 1h",
        [{"a": datetime(1970, 1, 2, tzinfo=UTC), "b": datetime(2026, 1, 1, 5, tzinfo=UTC)}]),
    "project_away_names_a_column_twice": (
        f"{FILES} | where ReportId == 1 | project DeviceId, FileName | project-away FileName, "
        "FileName", [{"DeviceId": "d1"}]),
    # table("T") with a literal is T: the shape of Sentinel's aadFunc(tableName) functions
    "tabular_function_over_table_name": (
        "let f = (t:string) { table(t) | where FileName == \"x.exe\" | project DeviceId };\n"
        "let a = f(\"DeviceProcessEvents\");\nlet b = f(\"DeviceFileEvents\");\n"
        "union isfuzzy=true a, b | count", [{"Count": 0}]),
    # a function body whose last statement ends with `;` (Sentinel's ProcessCreationEvents)
    "tabular_function_body_ending_with_a_semicolon": (
        f"let F = () {{\n  let e = {FILES} | where ReportId > 2;\n  e;\n  }};\n"
        "F | project ReportId | order by ReportId asc", [{"ReportId": 3}, {"ReportId": 4}]),
    "let_tabular_result_used_as_table": (
        f"let suspicious = {FILES} | where Signer != \"MS\" | distinct DeviceId;\n"
        f"{FILES} | join kind=inner (suspicious) on DeviceId | project ReportId "
        "| order by ReportId asc", [{"ReportId": 1}, {"ReportId": 2}]),
    "parse_after_project": (
        'datatable(s:string)["user=bob id=5", "nothing"] | project s '
        '| parse s with * "user=" User " id=" Id:long | project User, Id',
        [{"User": "bob", "Id": 5}, {"User": "", "Id": None}]),
    # partition applies the subquery to each value of the key
    "partition_by_key_top_one": (
        f"{FILES} | partition by DeviceId (top 1 by Timestamp desc) | project ReportId "
        "| order by ReportId asc", [{"ReportId": 2}, {"ReportId": 4}]),
    "partition_by_key_summarize": (
        f"{FILES} | partition by DeviceId (summarize n = count(), m = max(ReportId)) "
        "| order by m asc", [{"n": 2, "m": 2}, {"n": 2, "m": 4}]),
    # top-nested: each level keeps its best values within the level above
    "top_nested_two_levels": (
        f"{FILES} | top-nested 1 of Signer by n = count(), top-nested 2 of FileName by "
        "newest = max(ReportId) | order by newest desc",
        [{"Signer": "MS", "n": 3, "FileName": "a.exe", "newest": 4},
         {"Signer": "MS", "n": 3, "FileName": "c.exe", "newest": 3}]),
    "top_nested_unnamed_is_aggregated_key": (
        f"{FILES} | top-nested of DeviceId by count() | order by DeviceId asc",
        [{"DeviceId": "d1", "aggregated_DeviceId": 2}, {"DeviceId": "d2",
                                                        "aggregated_DeviceId": 2}]),
    "serialize_prev_next_row_number": (
        f"{FILES} | order by ReportId asc | serialize | extend n = row_number(), "
        "p = prev(ReportId), nx = next(ReportId, 1, -1), r = row_number(10) "
        "| project ReportId, n, p, nx, r",
        [{"ReportId": 1, "n": 1, "p": None, "nx": 2, "r": 10},
         {"ReportId": 2, "n": 2, "p": 1, "nx": 3, "r": 11},
         {"ReportId": 3, "n": 3, "p": 2, "nx": 4, "r": 12},
         {"ReportId": 4, "n": 4, "p": 3, "nx": -1, "r": 13}]),
    # nearest-rank percentiles; percentiles() with one percentile names it like percentile()
    "percentiles_with_one_percentile": (
        "datatable(x:long)[1, 2, 3, 4, 5, 6, 7, 8, 9, 10] | summarize percentiles(x, 10), "
        "percentile(x, 50)",
        [{"percentile_x_10": 1, "percentile_x_50": 5}]),
    "split_with_index_is_one_part_or_empty": (
        'print a = split("a,b,c", ",", 1), b = split("a,b,c", ",", 5), c = split("a,b", ","), '
        'd = arraylength(split("a,b,c", ","))',
        [{"a": ["b"], "b": [], "c": ["a", "b"], "d": 3}]),
    # argmax/argmin are the deprecated aliases; Microsoft's parser names their columns max_X...
    "argmax_argmin_deprecated_names": (
        f"{FILES} | summarize argmax(Timestamp, ReportId) by DeviceId | order by DeviceId asc",
        [{"DeviceId": "d1", "max_Timestamp": datetime(2026, 11, 2, 10, 5, tzinfo=UTC),
          "max_Timestamp_ReportId": 2},
         {"DeviceId": "d2", "max_Timestamp": datetime(2026, 11, 2, 11, 0, tzinfo=UTC),
          "max_Timestamp_ReportId": 4}]),
    "argmin_deprecated_names": (
        f"{FILES} | where DeviceId == \"d2\" | summarize argmin(Timestamp, FileName)",
        [{"min_Timestamp": datetime(2026, 11, 2, 9, 0, tzinfo=UTC),
          "min_Timestamp_FileName": "c.exe"}]),
    "arg_max_keeps_the_row": (
        f"{FILES} | summarize arg_max(Timestamp, FileName) by DeviceId | order by DeviceId asc",
        [{"DeviceId": "d1", "Timestamp": datetime(2026, 11, 2, 10, 5, tzinfo=UTC),
          "FileName": "a.exe"},
         {"DeviceId": "d2", "Timestamp": datetime(2026, 11, 2, 11, 0, tzinfo=UTC),
          "FileName": "a.exe"}]),
    # a whole address or a prefix ending in a dot, delimited in the text
    "has_any_ipv4_prefix_needs_delimited_addresses": (
        'print a = has_any_ipv4_prefix("from 10.1.2.3, then", dynamic(["10.1.", "192.168."])), '
        'b = has_any_ipv4_prefix("x 110.1.2.3", dynamic(["10.1."])), '
        'c = has_any_ipv4_prefix("to 192.168.0.7.", "192.168.0.7"), '
        # the reference's examples: an invalid prefix, an invalid address, no delimiter
        'd = has_any_ipv4_prefix("05:04:54 127.0.0.1 GET /", dynamic(["127.0", "192.168."])), '
        'e = has_any_ipv4_prefix("05:04:54 127.0.0.256 GET /", "127.0.", "192.168."), '
        'f = has_any_ipv4_prefix("05:04:54127.0.0.1 GET /", "127.0.", "192.")',
        [{"a": True, "b": False, "c": True, "d": False, "e": False, "f": False}]),
    # timespan / number is a timespan (duckdb-kql took it for a ratio: epoch(BIGINT))
    "timespan_divided_by_a_number": (
        "let half = 20min / 2;\nprint a = half, b = 1h / 1m, "
        "c = datetime(2026-01-01) + 1d / 4",
        [{"a": timedelta(minutes=10), "b": 60.0, "c": datetime(2026, 1, 1, 6, tzinfo=UTC)}]),
    # count(Flag) takes a bool (Microsoft's parser), counts the rows where it holds, count_Flag
    "count_of_a_bool_column": (
        'datatable(D:string, Hit:bool)["a", true, "a", false, "b", true, "b", true] '
        "| summarize count(Hit) by D | order by D asc",
        [{"D": "a", "count_Hit": 1}, {"D": "b", "count_Hit": 2}]),
    # range() is inclusive of stop; bin() by a timespan computed in a let
    "range_of_datetimes_and_bin_by_a_computed_timespan": (
        "let half = 10m / 2.0;\n"
        "datatable(End:datetime)[datetime(2026-01-01T00:07:00Z)] "
        "| extend Key = range(bin(End - 10m, half), bin(End, half), half) "
        "| mv-expand Key to typeof(datetime) | project Key",
        [{"Key": datetime(2025, 12, 31, 23, 55, tzinfo=UTC)},
         {"Key": datetime(2026, 1, 1, 0, 0, tzinfo=UTC)},
         {"Key": datetime(2026, 1, 1, 0, 5, tzinfo=UTC)}]),
    # mv-expand todynamic(Col) keeps the name Col
    "mv_expand_of_todynamic_keeps_the_column_name": (
        'datatable(Details:string)["[{\\"r\\": 1}, {\\"r\\": 2}]"] '
        "| mv-expand todynamic(Details) | project r = toint(Details.r)",
        [{"r": 1}, {"r": 2}]),
    "parse_command_line_windows_quotes": (
        'print a = parse_command_line("cmd.exe /c \\"two words\\" x", "windows")',
        [{"a": ["cmd.exe", "/c", "two words", "x"]}]),
}
CASES.update(PARITY)


@pytest.fixture(scope="module")
def engine() -> LocalSource:
    return LocalSource({})


def run_local(engine: LocalSource, query: str) -> list[dict[str, Any]]:
    return run_case(engine, query, hunt_id="00000000-0000-4000-8000-000000000001", name="semantics")


@cache
def parser_diagnostics() -> dict[str, list[str]]:
    return diagnostics(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_local_engine_semantics(engine: LocalSource, name: str) -> None:
    query, expected = CASES[name]
    assert run_local(engine, query) == expected


@pytest.mark.skipif(shutil.which("node") is None, reason="Microsoft's KQL parser runs in node")
@pytest.mark.parametrize("name", sorted(CASES))
def test_microsofts_parser_accepts_the_same_query(name: str) -> None:
    assert parser_diagnostics()[name] == []


@pytest.mark.skipif(shutil.which("node") is None, reason="Microsoft's KQL parser runs in node")
def test_bad_regex_passes_microsofts_parser_but_fails_locally(engine: LocalSource) -> None:
    """Kusto.Language does not check regex patterns, so only running a hunt locally catches them."""
    query = 'print a = "x" matches regex "(a))"'
    assert analyse({"bad": query}, "defender")["bad"].diagnostics == []
    with pytest.raises(QueryError):
        run_local(engine, query)


def test_project_reorder_moves_the_named_columns_first(engine: LocalSource) -> None:
    rows = run_local(engine, f"{PROCESSES} | where ReportId == 4 "
                     "| project DeviceId, ReportId, FileName | project-reorder FileName, ReportId")
    assert [list(row) for row in rows] == [["FileName", "ReportId", "DeviceId"]]
    assert rows[0]["FileName"] == "pwsh.exe"


@pytest.mark.parametrize(("query", "named"), [
    ('externaldata(a:string)[@"https://example.org/list.csv"] with (format="csv")',
     "externaldata"),
    (f"{PROCESSES} | evaluate bag_unpack(FileName)", "evaluate bag_unpack"),
    (f"{PROCESSES} | top-nested 1 of DeviceId with others = \"x\" by c = count()",
     "top-nested with others"),
    (f"{PROCESSES} | partition by DeviceId (where ReportId > 1)", "partition (with Where inside)"),
    (f"{PROCESSES} | serialize | extend n = row_number(1, DeviceId != prev(DeviceId))",
     "row_number"),
    ("let f = (d:string = \"x\") { DeviceProcessEvents | where DeviceId == d }; f()",
     "let function:f"),
])
def test_unsupported_constructs_fail_locally_instead_of_guessing(
        engine: LocalSource, query: str, named: str) -> None:
    with pytest.raises(QueryError) as raised:
        run_local(engine, query)
    assert raised.value.message.startswith("local engine cannot ")
    assert "(not your query" in raised.value.message
    assert named in raised.value.message
    assert "Exception" not in raised.value.message  # never a raw DuckDB trace

