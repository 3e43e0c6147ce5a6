"""The report in a real browser: Debian's headless Chromium at a laptop's 1366 x 900.

Two ways of driving it. `--dump-dom`: the report's own script writes, on
window load, whether every image decoded and how wide the page is into
attributes of <body>, and console messages (errors, CSP refusals, an
uncaught exception) appear in Chromium's stderr log as CONSOLE lines. And
the DevTools protocol over a pipe (`--remote-debugging-pipe`, no extra
library): the page is loaded, measured with every <details> closed and then
with every one open, and links are followed, as a reader would. Screenshots
are kept in test-artifacts/ for people to look at.

What a reader at 1366 px must get (usseg.report.page.SCREEN, SCREEN_BUDGET;
usseg.figure_text.MIN_FONT_PX): with everything closed, the whole argument in
at most SCREEN_BUDGET screens; with everything open, nothing wider than the
window and no table that scrolls sideways; every figure shown at no more
than its natural size and its smallest text, as recorded when it was made,
at least MIN_FONT_PX on screen.

Chromium missing: skipped on a workstation, a failure in CI (CI=true), where
tools/install-system-deps.sh installs it.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import re
import select
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import REPO, in_ci
from usseg.figure_text import MIN_FONT_PX
from usseg.report.page import SCREEN, SCREEN_BUDGET

pytestmark = pytest.mark.browser

ARTIFACTS = REPO / "test-artifacts"

BASE_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars",
)


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    if Path("/usr/bin/chromium").exists():
        return "/usr/bin/chromium"
    if in_ci():
        pytest.fail("headless Chromium is not installed; CI installs it with tools/install-system-deps.sh")
    pytest.skip("headless Chromium is not installed (Debian: apt-get install chromium)")


def run_chromium(html: Path, tmp_path: Path, *args: str, width: int = 1366, height: int = 900):
    profile = tmp_path / f"chromium-profile-{len(list(tmp_path.glob('chromium-profile-*')))}"
    cmd = [chromium(), *BASE_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
           "--virtual-time-budget=10000", *args, html.resolve().as_uri()]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, f"chromium failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    return proc


def console_messages(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]


def body_attrs(dom: str) -> dict[str, str]:
    # After </head>: the inline script's and style's text may mention the tag.
    match = re.search(r"<body\b([^>]*)>", dom[dom.find("</head>"):])
    assert match, "no <body> in the dumped DOM"
    return dict(re.findall(r'([\w-]+)="([^"]*)"', match.group(1)))


def check_in_browser(html: Path, tmp_path: Path, width: int = 1366) -> dict[str, str]:
    """Load the report; assert every image decoded and the console stayed silent; return <body>'s attributes."""
    proc = run_chromium(html, tmp_path, "--enable-logging=stderr", "--v=0", "--dump-dom", width=width)
    attrs = body_attrs(proc.stdout)
    assert attrs.get("data-images-checked") == "true", "the report's load-time check did not run"
    n_images = len(re.findall(r"<img\b", html.read_text()))
    assert n_images > 0
    assert int(attrs["data-images-total"]) == n_images
    assert attrs["data-images-broken"] == "", f"images that did not load: {attrs['data-images-broken']}"
    assert console_messages(proc.stderr) == [], "console messages:\n" + "\n".join(console_messages(proc.stderr))
    return attrs


# ----------------------------------------------------------------------------- DevTools over a pipe


class Page:
    """One page in headless Chromium, driven over the DevTools protocol on a pipe (fds 3 and 4).

    The protocol's messages are JSON separated by NUL bytes: no websocket client is needed.
    """

    TIMEOUT_S = 120

    def __init__(self, html: Path, profile: Path, size: tuple[int, int] = SCREEN):
        to_chromium, from_chromium = os.pipe(), os.pipe()

        def child_fds():  # Chromium reads commands on fd 3 and writes replies on fd 4
            read, write = os.dup(to_chromium[0]), os.dup(from_chromium[1])
            os.dup2(read, 3)
            os.dup2(write, 4)

        self.proc = subprocess.Popen(
            [chromium(), *BASE_FLAGS, "--remote-debugging-pipe", f"--user-data-dir={profile}",
             f"--window-size={size[0]},{size[1]}", "about:blank"],
            pass_fds=(3, 4), preexec_fn=child_fds, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chromium[0])
        os.close(from_chromium[1])
        self._out, self._in = to_chromium[1], from_chromium[0]
        self._buffer, self._id = b"", 0
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.send("Emulation.setDeviceMetricsOverride", width=size[0], height=size[1], deviceScaleFactor=1,
                  mobile=False, session=True)
        self.send("Page.navigate", url=html.resolve().as_uri(), session=True)
        deadline = time.monotonic() + self.TIMEOUT_S
        while self.js("document.body && document.body.getAttribute('data-images-checked')") != "true":
            assert time.monotonic() < deadline, "the report did not finish loading"
            time.sleep(0.2)

    def send(self, method: str, session: bool = False, **params):
        self._id += 1
        message = {"id": self._id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._id:
                assert "error" not in reply, f"{method}: {reply['error']}"
                return reply["result"]

    def _read(self) -> dict:
        deadline = time.monotonic() + self.TIMEOUT_S
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._in], [], [], max(deadline - time.monotonic(), 0))
            assert ready, "Chromium did not answer"
            chunk = os.read(self._in, 1 << 20)
            assert chunk, "Chromium closed its DevTools pipe"
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def js(self, expression: str):
        """The value of a JavaScript expression in the page."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, session=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def open_details(self, open_: bool = True) -> None:
        self.js(f"document.querySelectorAll('details').forEach(function (d) {{ d.open = {str(open_).lower()}; }})")

    def screenshot(self, path: Path, y: int = 0, height: int = SCREEN[1]) -> None:
        shot = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True, session=True,
                         clip={"x": 0, "y": y, "width": SCREEN[0], "height": height, "scale": 1})
        path.write_bytes(base64.b64decode(shot["data"]))

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        os.close(self._out)
        os.close(self._in)


@pytest.fixture(scope="module")
def tiny_report(tiny_run) -> Path:
    html = tiny_run / "results" / "report" / "report.html"
    assert html.is_file(), f"the tiny run made no report at {html}"
    return html


@pytest.fixture(scope="module")
def page(tiny_report, tmp_path_factory):
    opened = Page(tiny_report, tmp_path_factory.mktemp("chromium-profile"))
    yield opened
    opened.close()


# JavaScript measurements, each over the whole page.
TOO_WIDE = """Array.prototype.slice.call(document.querySelectorAll('body *')).filter(function (e) {
    var r = e.getBoundingClientRect(); return r.width > 0 && (r.right > innerWidth + 1 || r.left < -1);
}).map(function (e) { return e.tagName + '#' + e.id + '.' + e.className; }).slice(0, 10)"""
SCROLLING_SIDEWAYS = """Array.prototype.slice.call(document.querySelectorAll('.table-wrap, pre')).filter(function (e) {
    return e.getClientRects().length && e.scrollWidth > e.clientWidth + 1;
}).map(function (e) { var t = e.querySelector('table'); return (t && t.id) || e.id || e.className; })"""
# Table cells whose text runs past their edge (into the next column), e.g. a header that may not wrap.
OVERFLOWING_CELLS = """Array.prototype.slice.call(document.querySelectorAll('th, td')).filter(function (e) {
    return e.getClientRects().length && e.scrollWidth > e.clientWidth + 1;
}).map(function (e) { return e.closest('table').className + ': ' + e.textContent.trim().slice(0, 40); }).slice(0, 10)"""
FIGURES = """Array.prototype.slice.call(document.images).map(function (i) {
    return {id: i.id, natural: i.naturalWidth, shown: i.clientWidth, font: i.getAttribute('data-min-font-px')};
})"""


@pytest.mark.e2e
def test_report_loads_every_image_without_console_errors(tiny_report, tmp_path):
    for width in (1366, 1920):
        attrs = check_in_browser(tiny_report, tmp_path, width=width)
        # nothing wider than the window: no sideways scrolling of the whole page on a laptop
        assert int(attrs["data-page-width"]) <= int(attrs["data-window-width"]), attrs


@pytest.mark.e2e
def test_collapsed_the_page_fits_its_screen_budget_and_the_first_screen_has_the_answer(page):
    page.open_details(False)
    height = page.js("document.documentElement.scrollHeight")
    assert height <= SCREEN_BUDGET * SCREEN[1], f"{height} px: {height / SCREEN[1]:.1f} screens, more than {SCREEN_BUDGET}"
    # The first screen: the verdict with its failing checks (each with its unit) and the pipeline answer.
    bottom = page.js("document.querySelector('.verdict').getBoundingClientRect().bottom")
    assert bottom <= SCREEN[1], f"the verdict box ends at {bottom} px, below the first screen"
    assert page.js("document.querySelector('.verdict .pipeline-answer').textContent").startswith(
        "Pipeline ruled out?")


@pytest.mark.e2e
def test_expanded_nothing_is_wider_than_the_window(page):
    page.open_details(True)
    try:
        assert page.js("document.documentElement.scrollWidth") <= page.js("document.documentElement.clientWidth")
        assert page.js(TOO_WIDE) == []
        assert page.js(SCROLLING_SIDEWAYS) == [], "tables or blocks that scroll sideways"
        assert page.js(OVERFLOWING_CELLS) == [], "table cells whose text runs into the next column"
    finally:
        page.open_details(False)


@pytest.mark.e2e
def test_every_figure_at_most_its_natural_size_with_text_large_enough(page):
    page.open_details(True)
    try:
        figures = page.js(FIGURES)
    finally:
        page.open_details(False)
    assert figures
    for f in figures:
        assert 0 < f["shown"] <= f["natural"], f"{f['id']} is shown at {f['shown']} px, wider than its {f['natural']}"
        assert f["font"] is not None, f"{f['id']}: no text size recorded (usseg.figure_text.save_png)"
        on_screen = float(f["font"]) * f["shown"] / f["natural"]
        assert on_screen >= MIN_FONT_PX - 0.05, f"{f['id']}: smallest text {on_screen:.1f} px on screen"


@pytest.mark.e2e
def test_a_link_opens_the_details_it_leads_into(page):
    page.open_details(False)
    # A figure's provenance link leads into the closed provenance table; following it opens the way there.
    target = page.js("""(function () {
        var link = document.querySelector('figure .prov-link'); link.click();
        return link.getAttribute('href').slice(1); })()""")
    assert page.js(f"document.getElementById('{target}').getClientRects().length") > 0, f"#{target} stays hidden"
    assert page.js(f"document.getElementById('{target}').closest('details').open") is True
    page.open_details(False)


@pytest.mark.e2e
def test_screenshots(page):
    """The first screen and the page's first screens, for people to look at (test-artifacts/)."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.open_details(False)
    page.js("window.scrollTo(0, 0)")
    shot = ARTIFACTS / "report.png"
    page.screenshot(shot)
    from PIL import Image

    with Image.open(shot) as img:
        assert img.size == SCREEN
        # the verdict box (red, amber or green) is on the first screen
        colours = img.convert("RGB").getcolors(maxcolors=1 << 20)
    assert len(colours) > 20, "the screenshot is blank"
    height = page.js("document.documentElement.scrollHeight")
    page.screenshot(ARTIFACTS / "report-collapsed.png", 0, height)


def test_hostile_strings_stay_inert_in_a_browser(tmp_path, monkeypatch):
    """The fake run's data holds <script> and attribute-breaking strings: nothing of them may run."""
    spec = importlib.util.spec_from_file_location("report_fakes", Path(__file__).with_name("test_report.py"))
    fakes = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fakes)
    monkeypatch.chdir(tmp_path)
    config = fakes.full_config()
    results = fakes.make_fake_run(tmp_path, config)
    out = tmp_path / "report.html"
    fakes.build_report(config, fakes.run_inputs(config, results), out)
    check_in_browser(out, tmp_path)  # a script that ran would have logged "xss" to the console
