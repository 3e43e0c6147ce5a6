"""The report in a real browser: Debian's headless Chromium, driven from its command line.

The report's own script writes, on window load, whether every image decoded
and how wide the page is into attributes of <body>; --dump-dom returns that
DOM. Console messages (errors, CSP refusals, an uncaught exception) appear in
Chromium's stderr log as CONSOLE lines. A screenshot at a laptop's size is
kept in test-artifacts/report.png for people to look at.

Chromium missing: skipped on a workstation, a failure in CI (CI=true), where
tools/install-system-deps.sh installs it.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, in_ci

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
    match = re.search(r"<body\b([^>]*)>", dom)
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


@pytest.fixture(scope="module")
def tiny_report(tiny_run) -> Path:
    html = tiny_run / "results" / "report" / "report.html"
    assert html.is_file(), f"the tiny run made no report at {html}"
    return html


@pytest.mark.e2e
def test_report_loads_every_image_without_console_errors(tiny_report, tmp_path):
    for width in (1366, 1920):
        attrs = check_in_browser(tiny_report, tmp_path, width=width)
        # nothing wider than the window: no sideways scrolling of the whole page on a laptop
        assert int(attrs["data-page-width"]) <= int(attrs["data-window-width"]), attrs


@pytest.mark.e2e
def test_screenshot_artifact(tiny_report, tmp_path):
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    shot.unlink(missing_ok=True)
    run_chromium(tiny_report, tmp_path, f"--screenshot={shot}")
    from PIL import Image

    with Image.open(shot) as img:
        assert img.size == (1366, 900)
        # the verdict box (red, amber or green) is on the first screen
        colours = img.convert("RGB").getcolors(maxcolors=1 << 20)
    assert len(colours) > 20, "the screenshot is blank"


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
