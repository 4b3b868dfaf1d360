"""Generate the bundled sample telemetry: one UTC day of Defender advanced-hunting events.

``python -m devtools.make_samples --out samples --day 2026-11-27`` writes
``DeviceProcessEvents.jsonl`` and ``DeviceNetworkEvents.jsonl`` (one JSON object a line, columns
from ``shared/schemas/defender.json`` in schema order), ``manifest.json`` (the attacks and the hard
negatives, with the ReportIds that identify their rows) and ``README.md``.

Six devices of a fictitious ``contoso`` domain live through an ordinary day (services, scheduled
tasks, users with Outlook, Teams and Edge, an IT administrator, an application server) and four
PowerShell attacks happen on three of them. The output is a pure function of ``--day`` and the
fixed seed: no clock is read, so ``tests/test_samples.py`` can check that the committed files are
exactly what this program writes.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from devtools.samples.catalog import DEFAULT_DAY
from devtools.samples.writer import generate


def _day(text: str) -> str:
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"'{text}' is not a day (YYYY-MM-DD)") from exc


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.make_samples",
                                     description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=Path("samples"), help="output folder")
    parser.add_argument("--day", default=DEFAULT_DAY, type=_day, help="UTC day, YYYY-MM-DD")
    args = parser.parse_args(argv)
    for name, path in generate(args.out, args.day).items():
        print(f"{path}  {path.stat().st_size:>9,} bytes  ({name})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
