"""The published dashboard renders a funcbench series offline, in a real headless browser.

Both pages are drawn by JavaScript, so reading the HTML proves little: `funcbench publish`'s
folder is served on 127.0.0.1 and Debian's headless Chromium loads it with every outside host
blocked (``--proxy-server=127.0.0.1:9``: loopback is never proxied, any other host fails), and
``--dump-dom`` (with a virtual-time budget for the scripts) shows the rendered DOM; screenshots
are kept in artifacts/. Chromium missing is a failure, not a skip: `python3 dev.py test`
installs it before it runs the tests.
"""
from __future__ import annotations

import functools
import http.server
import re
import shutil
import subprocess
import threading
import urllib.parse

import pytest

from asv_helpers import ROOT, TEST_TAG, shared_suite
from funcbench.results import dashboard

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--proxy-server=127.0.0.1:9"]  # no outside host: what a CDN would serve never arrives
ARTIFACTS = ROOT / "artifacts"
BENCHMARK = "benchmarks.ppl_simple_reg.time_op"


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("chromium not found: run the tests with `python3 dev.py test`, which installs it "
                "(Debian: apt-get install -y chromium)")


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """A copy of the shared suite's published folder, made self-contained as funcbench publish does."""
    suite = shared_suite(tmp_path_factory.getbasetemp())
    html = tmp_path_factory.mktemp("dashboard") / "html"
    shutil.copytree(suite["work"] / "html", html)
    dashboard.make_self_contained(html, dashboard.vendor_archive())
    return html


@pytest.fixture(scope="module")
def served(published):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(published))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _render(tmp_path, url: str, screenshot: str) -> str:
    """The rendered DOM of ``url``; a screenshot of it kept as artifacts/``screenshot``."""
    base = [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=15000"]
    proc = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / screenshot
    shot.unlink(missing_ok=True)
    subprocess.run([*base, "--window-size=1400,1000", f"--screenshot={shot}", url], capture_output=True, timeout=120,
                   check=True)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000, f"{shot}: no picture ({len(data)} bytes)"
    return proc.stdout


def _text(dom: str) -> str:
    dom = re.sub(r"<(script|style)\b[^>]*>.*?</\1>", " ", dom, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom))


def test_nothing_in_the_published_folder_loads_from_outside_it(published, tmp_path):
    assert dashboard.outside_loads(published) == []
    # and the check sees what asv's stock page loads
    stock = tmp_path / "stock"
    stock.mkdir()
    shutil.copy(published / "index.legacy.html", stock / "index.html")
    (stock / "index.html").write_text((stock / "index.html").read_text().replace(
        "vendor/jquery-3.3.1.min.js", "https://code.jquery.com/jquery-3.3.1.min.js"))
    assert dashboard.outside_loads(stock) == ["index.html: https://code.jquery.com/jquery-3.3.1.min.js"]


def test_asvs_own_page_draws_a_named_series_and_the_tag_offline(served, tmp_path):
    params = {"p-model": "'ppl_simple_reg'", "p-task": "'vjp'", "p-api": "'autograd'",
              "p-preset": "'small'", "p-device": "'cpu'"}
    dom = _render(tmp_path, f"{served}/{dashboard.ASV_PAGE}#{BENCHMARK}?{urllib.parse.urlencode(params)}",
                  "dashboard-asv.png")
    assert "failed to load" not in dom, _text(dom)[:2000]
    assert BENCHMARK in dom and "ppl_simple_reg" in dom
    assert "flot-base" in dom, _text(dom)[:2000]  # flot drew the graph's canvas once the data loaded
    assert TEST_TAG in dom  # asv draws tags as labelled lines on the commit axis


def test_tachyons_page_draws_a_named_series_with_its_value_offline(served, tmp_path):
    overview = _text(_render(tmp_path, f"{served}/index.html", "dashboard-overview.png"))
    assert "failed to load" not in overview
    assert BENCHMARK in overview or "ppl_simple_reg.time_op" in overview, overview[:2000]
    # the machine whose results cover the commit axis (the other box has one commit in another env)
    dom = _render(tmp_path, f"{served}/index.html#view=explore&bench={BENCHMARK}&machine=cpu-box&python=3.11"
                  "&f-env-FUNCBENCH_DEVICE=cpu&f-env-FUNCBENCH_PRESET=small",
                  "dashboard-explore.png")
    text = _text(dom)
    assert "ppl_simple_reg" in text and "failed to load" not in text
    assert "<canvas" in dom, text[:3000]  # uPlot draws the series into a canvas
    # and states its newest value, in the unit asv recorded (seconds, shown as µs or ms)
    assert re.search(r"LATEST \d+(\.\d+)?\s*(µs|ms|s)\b", text, re.I), text[:3000]
    # tags are chips beside the chart (their 'v' dropped) and counted in its tag guide
    assert TEST_TAG.removeprefix("v") in text and "1 tags" in text, text[:3000]
