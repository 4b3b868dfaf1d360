"""Does a rule silence everything? Each condition is tried on a set of realistic, diverse values
generated for its column (by the column's type and what its name says it holds); a condition
that holds for every one of them filters nothing, and a rule made only of such conditions
silences every row of its hunts (``DeviceName matches "."``, ``Timestamp matches "2"``,
``DeviceId matches "[0-9a-f]"``)."""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from .rules import Condition, Rule, fold

SAMPLES = 200
Maker = Callable[[random.Random], object]


def _hex(length: int) -> Maker:
    return lambda r: "".join(r.choice("0123456789abcdef") for _ in range(length))


def _guid(r: random.Random) -> object:
    text = _hex(32)(r)
    assert isinstance(text, str)
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def _word(r: random.Random, low: int = 1, high: int = 12) -> str:
    alphabet = string.ascii_letters + string.digits + "-_"
    return "".join(r.choice(alphabet) for _ in range(r.randint(low, high)))


def _host(r: random.Random) -> object:
    name = r.choice(["ws", "dc", "srv", "laptop", "mac", "sql", "web", "x", ""]) + _word(r, 0, 6)
    name = name or "h"
    return name if r.random() < 0.6 else f"{name}.{_word(r, 2, 8)}.local"


def _ip(r: random.Random) -> object:
    if r.random() < 0.7:
        return ".".join(str(r.randint(0, 255)) for _ in range(4))
    return ":".join(f"{r.randint(0, 0xffff):x}" for _ in range(8))


def _file(r: random.Random) -> object:
    return _word(r, 1, 10) + r.choice([".exe", ".dll", ".ps1", ".bat", "", ".EXE", ".js"])


def _path(r: random.Random) -> object:
    parts = [_word(r, 1, 8) for _ in range(r.randint(1, 4))]
    return r.choice(["C:\\", "D:\\", "/", "\\\\srv\\"]) + "\\".join(parts)


def _command(r: random.Random) -> object:
    return " ".join([str(_file(r))] + [_word(r, 1, 10) for _ in range(r.randint(0, 4))])


def _account(r: random.Random) -> object:
    name = _word(r, 1, 10)
    return r.choice([name, f"{_word(r, 2, 6)}\\{name}", f"{name}@{_word(r, 2, 8)}.com"])


def _url(r: random.Random) -> object:
    return f"{r.choice(['http', 'https'])}://{_host(r)}/{_word(r, 0, 10)}"


def _number(r: random.Random) -> object:
    return str(r.randint(-5, 10**6))


def _accented(r: random.Random) -> object:
    return "é" + _word(r)


_TEXT_MAKERS: tuple[Maker, ...] = (_word, _host, _ip, _file, _path, _command, _account, _url,
                                   _guid, _number, _accented)


def _text(r: random.Random) -> object:
    return r.choice(_TEXT_MAKERS)(r)


def _time(r: random.Random) -> object:
    """Times a hunt can return: within Defender's 30-day retention of any day of the year."""
    base = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=r.randint(0, 364))
    return base + timedelta(seconds=r.randint(0, 86399), microseconds=r.randint(0, 999999))


_BY_NAME: tuple[tuple[tuple[str, ...], Maker], ...] = (
    (("sha256",), _hex(64)), (("sha1",), _hex(40)), (("md5",), _hex(32)),
    (("aaddeviceid", "objectid", "tenantid", "sid"), _guid),
    (("deviceid",), _hex(40)), (("ip", "ipaddress"), _ip),
    (("port",), lambda r: r.randint(0, 65535)),
    (("devicename", "computer", "hostname", "host"), _host),
    (("commandline",), _command), (("filename", "processname", "image"), _file),
    (("folderpath", "path", "directory"), _path), (("url", "uri"), _url),
    (("accountname", "account", "user", "upn"), _account), (("id",), _hex(40)),
)
_BY_TYPE: dict[str, Maker] = {
    "datetime": _time, "long": lambda r: r.randint(-(2**40), 2**40),
    "int": lambda r: r.randint(-1000, 70000), "real": lambda r: r.uniform(-1e6, 1e6),
    "bool": lambda r: r.random() < 0.5, "guid": _guid,
    "dynamic": lambda r: r.choice(["{}", "[]", f'{{"{_word(r)}": 1}}', f'["{_word(r)}"]']),
}


def maker(column: str, kql_type: str) -> Maker:
    """How to make values of *column*: its type first, then what its name says."""
    if kql_type in _BY_TYPE:
        return _BY_TYPE[kql_type]
    name = column.casefold()
    for suffixes, make in _BY_NAME:
        if any(name.endswith(s) for s in suffixes):
            return make
    return _text


def samples(column: str, kql_type: str) -> list[str]:
    """*SAMPLES* folded values of *column*, the same every time (seeded by the column)."""
    generator = random.Random(f"{column}:{kql_type}")
    make = maker(column, kql_type)
    return [text for text in (fold(make(generator)) for _ in range(SAMPLES)) if text]


def holds_for_all(condition: Condition, kql_type: str) -> bool:
    return all(condition.test(value) for value in samples(condition.column, kql_type))


def matches_everything(rule: Rule, types: dict[str, str]) -> bool:
    """True when every condition of *rule* holds for every value made for its column
    (*types*: column -> KQL type, ``string`` when unknown)."""
    return all(holds_for_all(c, types.get(c.column, "string")) for c in rule.where)
