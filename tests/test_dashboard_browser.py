"""The published asv dashboard renders a funcbench graph in a real headless browser.

asv's dashboard is drawn by JavaScript, so reading the HTML files proves little: headless
Debian chromium loads it from a local http.server, --dump-dom (with a virtual-time budget for
the scripts) shows the rendered DOM, and --screenshot keeps a picture in artifacts/.
Chromium (or npm, which fetches asv's CDN JavaScript for this offline machine) missing is a
failure, not a skip: `python3 dev.py test` installs both before it runs the tests.
"""
from __future__ import annotations

import functools
import http.server
import shutil
import subprocess
import threading
import urllib.parse

import pytest

from asv_helpers import ROOT, offline_html, shared_suite

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOT = ROOT / "artifacts" / "dashboard.png"


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("chromium not found: run the tests with `python3 dev.py test`, which installs it "
                "(Debian: apt-get install -y chromium)")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    suite = shared_suite(tmp_path_factory.getbasetemp())
    # asv's page loads its JavaScript from CDNs; serve a copy that uses npm's copies instead.
    html = offline_html(suite["work"] / "html", tmp_path_factory.mktemp("dashboard") / "html")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _graph_url(base: str) -> str:
    # asv's graph page: #<benchmark>?p-<param>=<repr of value>&...
    params = {"p-model": "'ppl_simple_reg'", "p-task": "'vjp'", "p-api": "'autograd'",
              "p-preset": "'small'", "p-device": "'cpu'"}
    return f"{base}/index.html#benchmarks.ppl_simple_reg.time_op?{urllib.parse.urlencode(params)}"


def _chromium_run(tmp_path, *args: str) -> subprocess.CompletedProcess:
    cmd = [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_graph_page_renders(served, tmp_path):
    proc = _chromium_run(tmp_path, "--virtual-time-budget=15000", "--dump-dom", _graph_url(served))
    dom = proc.stdout
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "benchmarks.ppl_simple_reg.time_op" in dom, dom[-3000:]
    # flot draws into canvases inside the graph container once the data loaded.
    assert "flot-base" in dom or "<canvas" in dom, dom[-3000:]
    assert "ppl_simple_reg" in dom


def test_screenshot_of_graph_page(served, tmp_path):
    SCREENSHOT.parent.mkdir(exist_ok=True)
    if SCREENSHOT.exists():
        SCREENSHOT.unlink()
    proc = _chromium_run(tmp_path, "--virtual-time-budget=15000", "--window-size=1280,900",
                         f"--screenshot={SCREENSHOT}", _graph_url(served))
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = SCREENSHOT.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 20_000, f"screenshot suspiciously small ({len(data)} bytes)"
