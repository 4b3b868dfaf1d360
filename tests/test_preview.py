"""``huntwire preview-card``: payload JSON, the HTML page of the adaptivecards renderer, and the
PNG from headless Chromium. Browser tests fail (not skip) without Chromium: `make test`
installs it."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from shared.cards import MAX_PAYLOAD_BYTES, card_of, payload_size
from shared.cards.incident import build_incident_post
from shared.cli.preview import register
from shared.hunt import Hunt, TeamsOptions
from shared.incidents.preview import incident_preview
from shared.preview import (
    Chromium,
    check_card,
    crop_height,
    render_html,
    sample_hunt,
    sample_rows,
    window_for,
)

ALLOWED_LINKS = ("https://security.microsoft.com/", "https://attack.mitre.org/techniques/",
                 "https://portal.azure.com/")
HOSTILE = ("[Reset your password](https://evil.example/login) ![p](https://evil.example/p.png) "
           "<at>SOC Lead</at> <img src=x onerror=alert(1)> </script><script>alert(1)</script> "
           "**bold** invoice\u202egpj.exe\u200b\u2066")


def preview_card(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="huntwire")
    register(parser.add_subparsers())
    args = parser.parse_args(["preview-card", *argv])
    result: int = args.handler(args)
    return result


def incident_card(hunt: Hunt, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """What production posts for *rows*: the card of their most severe incident."""
    _, _, post = incident_preview([hunt], {hunt.id: rows})
    return build_incident_post(post)


def sample_payload() -> dict[str, Any]:
    return incident_card(sample_hunt(), sample_rows())


def hostile_payload(count: int = 50) -> dict[str, Any]:
    hunt = sample_hunt()
    hunt = type(hunt)(**{**hunt.__dict__, "name": HOSTILE[:150],
                         "teams": TeamsOptions(max_findings=50)})
    rows = []
    for index, row in enumerate(sample_rows() * (count // 4 + 1)):
        rows.append({**row, "ReportId": index, "ProcessCommandLine": HOSTILE * 600,
                     "DecodedCommand": HOSTILE, "DeviceName": HOSTILE, "AccountName": HOSTILE})
    rows = [{**row, "DeviceName": HOSTILE, "DeviceId": "ab" * 20} for row in rows[:count]]
    return incident_card(hunt, rows)


def non_blank(png: Path) -> tuple[int, float]:
    """(distinct colours, share of pixels that differ from the top-left background)."""
    with Image.open(png) as image:
        rgb = image.convert("RGB")
        colours = rgb.getcolors(maxcolors=1 << 24) or []
        background = rgb.getpixel((0, 0))
        differing = sum(count for count, colour in colours if colour != background)
        return len(colours), differing / (rgb.width * rgb.height)


@pytest.fixture(scope="module")
def chromium() -> Chromium:
    return Chromium.find()


# --- without a browser ------------------------------------------------------------------------

def test_page_inlines_everything_and_the_payload_cannot_close_its_script() -> None:
    page = render_html(hostile_payload(4))

    assert len(re.findall(r"<script\b", page)) == 4, "payload, markdown-it, renderer, ours"
    assert not re.search(r"<script[^>]*\bsrc=", page)
    assert not re.search(r"<link\b", page)
    payload_block = page.split('id="huntwire-payload">')[1].split("</script>")[0]
    assert "<" not in payload_block
    assert json.loads(payload_block) == hostile_payload(4)


def test_cli_without_png_writes_the_payload_and_the_page(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = preview_card("--out", str(tmp_path), "--no-png", "--format", "json")
    report = json.loads(capsys.readouterr().out)

    assert code == 0
    assert report["png"] is None
    assert report["checked"] is False
    assert json.loads((tmp_path / "card.json").read_text()) == sample_payload()
    assert report["payload_bytes"] == payload_size(sample_payload())
    assert (tmp_path / "card.html").read_text().startswith("<!doctype html>")


def test_cli_findings_option_makes_that_many_sample_findings(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert preview_card("--out", str(tmp_path), "--no-png", "--findings", "30",
                        "--format", "json") == 0
    payload = json.loads((tmp_path / "card.json").read_text())
    report = json.loads(capsys.readouterr().out)

    assert report["findings"] > 4  # the most severe incident of the 30 sample findings
    assert f"{report['findings']} new findings" in json.dumps(card_of(payload)["body"][0])
    assert payload_size(payload) <= MAX_PAYLOAD_BYTES


def write_eval(path: Path) -> None:
    path.write_text(json.dumps({"now": "2026-11-27T23:00:00Z", "hunts": [
        {"id": "11111111-1111-1111-1111-111111111111", "name": "Quiet hunt", "matches": [],
         "error": None},
        {"id": "22222222-2222-2222-2222-222222222222", "name": "Cradle hunt",
         "matches": sample_rows()[:2], "error": None},
    ]}))


def test_cli_from_eval_previews_the_first_hunt_with_matches(tmp_path: Path) -> None:
    eval_file = tmp_path / "eval.json"
    write_eval(eval_file)
    hunts = tmp_path / "hunts"
    hunts.mkdir()
    (hunts / "cradle.yaml").write_text(
        "id: 22222222-2222-2222-2222-222222222222\nname: Cradle hunt from YAML\n"
        "severity: Low\nrelevantTechniques: [T1105]\nsource: defender\n"
        "query: DeviceProcessEvents | take 1\n")
    out = tmp_path / "out"

    code = preview_card("--from-eval", str(eval_file), "--hunts", str(hunts), "--out", str(out),
                        "--no-png")
    card = card_of(json.loads((out / "card.json").read_text()))
    header = json.dumps(card["body"][0])

    assert code == 0
    assert "Cradle hunt from YAML" in header
    assert "LOW" in header
    assert "1 new finding" in header  # the two sample matches are on two devices
    assert "https://attack.mitre.org/techniques/T1105/" in json.dumps(card)


def test_cli_from_eval_with_an_unknown_hunt_file_uses_the_eval_name(tmp_path: Path) -> None:
    eval_file = tmp_path / "eval.json"
    write_eval(eval_file)

    code = preview_card("--from-eval", str(eval_file), "--hunts", str(tmp_path / "none"),
                        "--hunt", "22222222-2222-2222-2222-222222222222", "--out",
                        str(tmp_path), "--no-png", "--findings", "1")
    header = json.dumps(card_of(json.loads((tmp_path / "card.json").read_text()))["body"][0])

    assert code == 0
    assert "Cradle hunt" in header
    assert "1 new finding" in header


@pytest.mark.parametrize("content", ["{not json", '{"hunts": 3}', '{"hunts": []}'])
def test_cli_reports_unusable_eval_output(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str) -> None:
    eval_file = tmp_path / "eval.json"
    eval_file.write_text(content)

    assert preview_card("--from-eval", str(eval_file), "--out", str(tmp_path), "--no-png") == 1
    assert "huntwire preview-card:" in capsys.readouterr().err
    assert not (tmp_path / "card.json").exists()


def test_screenshots_are_cropped_to_the_card(tmp_path: Path) -> None:
    png = tmp_path / "shot.png"
    Image.new("RGB", (900, 3000), "white").save(png)

    crop_height(png, 1234)
    crop_height(png, 2000)

    with Image.open(png) as image:
        assert image.size == (900, 1234)


def test_the_window_grows_with_the_findings_shown() -> None:
    small, large = window_for(sample_payload()), window_for(hostile_payload())

    assert small[0] == large[0] == 900
    assert 800 <= small[1] < large[1] <= 16_000


# --- in the browser ---------------------------------------------------------------------------

@pytest.mark.browser
def test_cli_renders_the_sample_card_cleanly_and_the_screenshot_is_not_blank(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], chromium: Chromium) -> None:
    code = preview_card("--out", str(tmp_path), "--format", "json")
    report = json.loads(capsys.readouterr().out)
    colours, inked = non_blank(Path(report["png"]))

    assert code == 0
    assert report["checked"] is True
    assert report["problems"] == []
    assert {Path(report[k]).name for k in ("json", "html", "png")} == {
        "card.json", "card.html", "card.png"}
    with Image.open(report["png"]) as image:
        assert image.width == 900
        assert 300 < image.height < 2000
    assert colours > 50
    assert inked > 0.05


@pytest.mark.browser
def test_hostile_card_parses_without_warnings_and_renders_only_our_links(
        tmp_path: Path, chromium: Chromium) -> None:
    page = tmp_path / "hostile.html"
    page.write_text(render_html(hostile_payload()))
    check = check_card(page, chromium)

    assert check.problems == ()
    assert check.card_version == "1.4"
    assert check.images == 0
    assert check.markdown_elements == 0
    assert check.text_runs > 100
    assert check.links
    for link in check.links:
        assert link.startswith(ALLOWED_LINKS)
        assert "evil" not in link
    assert window_for(hostile_payload())[1] >= check.height, "one browser run is enough"


@pytest.mark.browser
def test_the_renderer_check_catches_a_bad_card(tmp_path: Path, chromium: Chromium) -> None:
    """The check is not vacuous: version 1.5, a 1.5-only property and markdown in a TextBlock
    are all reported."""
    payload = sample_payload()
    card = card_of(payload)
    card["version"] = "1.5"
    card["body"].append({"type": "TextBlock", "style": "heading",
                         "text": "[Reset](https://evil.example) **now**"})
    page = tmp_path / "bad.html"
    page.write_text(render_html(payload))

    check = check_card(page, chromium)

    assert check.rendered
    assert any("1.5" in warning for warning in check.warnings)
    assert "https://evil.example" in check.links
    assert check.markdown_elements >= 1
    assert check.problems
