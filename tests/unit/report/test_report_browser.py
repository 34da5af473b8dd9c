"""The report opened in headless Chromium: charts and images render, and the console stays free of errors."""

from __future__ import annotations

import io

from PIL import Image

from clipline.pipelines.report.page import SECTIONS
from support.browser import VIEWPORT, inspect_page

# What rendered: each inline chart's drawn paths and each image's decoded size.
PROBE = """({
    svgPaths: [...document.querySelectorAll('svg')].map(s => s.querySelectorAll('path').length),
    images: [...document.images].map(i => [i.complete, i.naturalWidth, i.naturalHeight]),
    empty: [...document.querySelectorAll('p.empty')].filter(p => p.offsetHeight > 0).length,
    overflow: document.documentElement.scrollWidth > document.documentElement.clientWidth,
})"""


def _colours(png: bytes) -> int:
    image = Image.open(io.BytesIO(png))
    assert image.size == VIEWPORT
    return len(image.convert("RGB").getcolors(maxcolors=1 << 20))


def test_filled_report_renders_every_chart_without_console_errors(filled_report, tmp_path):
    report = inspect_page(filled_report.as_uri(), PROBE)
    (tmp_path / "report.png").write_bytes(report.screenshot_png)
    assert report.console_errors == []
    assert len(report.probe["svgPaths"]) == 3 and min(report.probe["svgPaths"]) > 10  # curves, domain bars, funnel
    assert len(report.probe["images"]) == 2 + 12 + 12 + 4  # confusion matrices, retrieval and captioning thumbnails,
    # heatmaps
    assert all(done and width > 0 and height > 0 for done, width, height in report.probe["images"])
    assert report.probe["empty"] == 0
    assert not report.probe["overflow"]  # wide tables scroll in place; the page itself does not
    assert _colours(report.screenshot_png) > 100  # charts drawn, not a blank page


def test_empty_report_renders_without_console_errors(empty_report):
    report = inspect_page(empty_report.as_uri(), PROBE)
    assert report.console_errors == []
    assert report.probe == {"svgPaths": [], "images": [], "empty": len(SECTIONS), "overflow": False}


def test_console_errors_and_broken_images_are_caught(tmp_path):
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><img src="missing.png"><script>console.error("boom")</script>')
    report = inspect_page(page.as_uri(), PROBE)
    assert any("boom" in e for e in report.console_errors)
    assert any("missing.png" in e for e in report.console_errors)
    assert report.probe["images"] == [[True, 0, 0]]
