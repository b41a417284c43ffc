"""The report in a real browser: Debian's headless Chromium loads the page, and the DOM says what it shows.

A copy of the page gets a small script that, once the page has loaded, writes what it finds (images decoded,
tables and their rows, their rendered height) as JSON into a ``<pre>``; ``--dump-dom`` then prints the DOM.
The report itself carries no script. Install the browser with ``apt-get install chromium``.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)"),
]

# Flags for a quiet, offline, throw-away browser: no sandbox (tests may run as root in containers), no GPU,
# no background traffic, a fresh profile per call.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
)
CHECK_SCRIPT = """<script>
window.addEventListener("load", () => {
  const loaded = (img) => img.complete && img.naturalWidth > 0;
  const images = Array.from(document.images);
  const report = {
    images: images.length,
    broken: images.filter((img) => !loaded(img)).map((img) => img.alt),
    widths: images.map((img) => img.naturalWidth),
    tables: Array.from(document.querySelectorAll("table")).map((table) => ({
      name: table.dataset.table,
      rows: table.tBodies[0].rows.length,
      folded: table.closest("details") !== null,
      height: table.getBoundingClientRect().height,
      headers: Array.from(table.tHead.rows[0].cells).map((cell) => cell.textContent),
    })),
  };
  const out = document.createElement("pre");
  out.id = "medbench-check";
  out.textContent = JSON.stringify(report);
  document.body.appendChild(out);
});
</script>"""


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def dom_report(report_dir, tmp_path_factory) -> dict:
    """What the check script found in the page as Chromium rendered it."""
    work = tmp_path_factory.mktemp("browser")
    page = (report_dir / "report.html").read_text(encoding="utf-8")
    checked = work / "checked.html"
    checked.write_text(page.replace("</body>", CHECK_SCRIPT + "\n</body>"), encoding="utf-8")
    # The virtual-time budget lets the load handler run before the DOM is dumped.
    result = chromium("--virtual-time-budget=10000", "--dump-dom", checked.as_uri(), profile=work / "profile")
    match = re.search(r'<pre id="medbench-check">(.*?)</pre>', result.stdout, re.S)
    assert match, f"no check output from chromium (exit {result.returncode}): {result.stderr[-2000:]}"
    return json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def test_every_image_loads_in_the_browser(dom_report, report_dir):
    assert dom_report["images"] >= 10
    assert dom_report["broken"] == []
    assert all(width > 300 for width in dom_report["widths"])


def test_tables_render_with_their_rows(dom_report):
    by_name: dict[str, list[dict]] = {}
    for table in dom_report["tables"]:
        by_name.setdefault(table["name"], []).append(table)
    assert {
        "glance",
        "verdict",
        "recall",
        "runs",
        "failures",
        "machines",
        "stacks",
        "bench",
        "references",
    } <= set(by_name)
    assert all(t["rows"] > 0 for t in dom_report["tables"])
    shown = [t for t in dom_report["tables"] if not t["folded"]]
    assert all(t["height"] > 20 * t["rows"] for t in shown)  # laid out, one visible line per row at least
    assert by_name["glance"][0]["rows"] == 3 and "≤ 1.5 pts" in by_name["glance"][0]["headers"]


def test_a_screenshot_shows_a_page(report_dir, tmp_path):
    shot = tmp_path / "report.png"
    result = chromium(
        "--window-size=1400,2400",
        f"--screenshot={shot}",
        (report_dir / "report.html").as_uri(),
        profile=tmp_path / "p",
    )
    assert shot.exists(), result.stderr[-2000:]
    from PIL import Image

    image = Image.open(shot).convert("L")
    assert image.size == (1400, 2400)
    low, high = image.getextrema()
    assert high - low > 100  # text and plots, not a blank page


# Headless Chromium will not make a window narrower than 500 px, so the report is laid out in an iframe of the
# width under test: its innerWidth and its media queries are those of a phone's viewport. The script then opens
# every folded <details> (their tables must fit too) and lists each visible element that reaches past the
# viewport's left or right edge, unless an ancestor scrolls or clips horizontally (a table's own scroll box),
# and each image that did not decode.
LAYOUT_SCRIPT = """<script>
const frame = document.getElementById("page");
frame.addEventListener("load", () => {
  const win = frame.contentWindow, doc = frame.contentDocument;
  doc.querySelectorAll("details").forEach((d) => { d.open = true; });
  const width = win.innerWidth;
  const clipped = (el) => {
    for (let a = el.parentElement; a && a !== doc.body; a = a.parentElement) {
      if (["auto", "scroll", "hidden", "clip"].includes(win.getComputedStyle(a).overflowX)) return true;
    }
    return false;
  };
  const name = (el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") +
    (typeof el.className === "string" && el.className ? "." + el.className.split(" ").join(".") : "") +
    (el.dataset && el.dataset.table ? "[" + el.dataset.table + "]" : "");
  const overflowing = [];
  for (const el of doc.body.querySelectorAll("*")) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    if ((r.right > width + 0.5 || r.left < -0.5) && !clipped(el)) {
      overflowing.push(name(el) + " " + Math.round(r.left) + ".." + Math.round(r.right));
    }
  }
  const glance = doc.querySelector("table[data-table=glance]");
  const verdict = glance ? Array.from(glance.tHead.rows[0].cells).find((c) => c.textContent.startsWith("≤")) : null;
  const report = {
    width: width,
    scroll_width: doc.scrollingElement.scrollWidth,
    overflowing: overflowing.slice(0, 20),
    images: doc.images.length,
    broken: Array.from(doc.images).filter((i) => !(i.complete && i.naturalWidth > 0)).map((i) => i.alt),
    verdict_right: verdict ? verdict.getBoundingClientRect().right : null,
  };
  const out = document.createElement("pre");
  out.id = "medbench-layout";
  out.textContent = JSON.stringify(report);
  document.body.appendChild(out);
});
</script>"""


def layout_at(report: Path, width: int, work: Path) -> dict:
    """What the layout script found with the report in a viewport ``width`` px wide."""
    page = (report / "report.html").read_text(encoding="utf-8")
    frame = (
        '<!DOCTYPE html><html><body style="margin:0">'
        f'<iframe id="page" style="border:0;display:block" width="{width}" height="2000" '
        f'srcdoc="{html.escape(page, quote=True)}"></iframe>{LAYOUT_SCRIPT}</body></html>'
    )
    checked = work / f"layout-{width}.html"
    checked.write_text(frame, encoding="utf-8")
    result = chromium(
        f"--window-size={max(width, 500) + 40},2100",
        "--virtual-time-budget=10000",
        "--dump-dom",
        checked.as_uri(),
        profile=work / f"profile-{width}",
    )
    match = re.search(r'<pre id="medbench-layout">(.*?)</pre>', result.stdout, re.S)
    assert match, f"no layout output from chromium (exit {result.returncode}): {result.stderr[-2000:]}"
    return json.loads(html.unescape(match.group(1)))


@pytest.mark.parametrize("width", [360, 390, 1400])
@pytest.mark.parametrize("which", ["report_dir", "quick_report_dir"])
def test_nothing_overflows_the_viewport_and_every_image_loads(which, width, request, tmp_path):
    """Phones (360, 390 px) and a desktop (1400 px): the page never scrolls sideways, only tables scroll inside
    their own box, every plot decodes, and the glance table's verdict column is on the first screen."""
    layout = layout_at(request.getfixturevalue(which), width, tmp_path)
    assert layout["width"] == width  # the viewport under test
    assert layout["scroll_width"] <= width, layout["overflowing"]
    assert layout["overflowing"] == []
    assert layout["images"] >= 4 and layout["broken"] == []
    assert layout["verdict_right"] is not None and layout["verdict_right"] <= width
