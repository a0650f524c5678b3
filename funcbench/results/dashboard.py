"""The published dashboard, self-contained: no script, stylesheet or font fetched from outside
its folder, so it opens where the internet does not reach (CI artifacts, clusters, a laptop).

After ``asv publish``:

- ``index.html`` is asv-tachyon's page (PyPI: a prebuilt page over the files asv publish writes);
- ``asv.html`` is asv's own page, its CDN scripts and stylesheet replaced by the copies that asv
  0.5.1's source distribution carried (PyPI; asv 0.6 moved them to CDNs), under ``vendor/``.

Why this choice, and what each page showed on our results: docs/asv-suite.md#the-dashboard.
Both read ``index.json`` and ``graphs/`` with XMLHttpRequest/fetch, which a browser refuses on
``file://``; ``serve`` (``funcbench publish --serve``) serves the folder on 127.0.0.1.
"""
from __future__ import annotations

import functools
import http.server
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Dict, List

# asv 0.5.1 is the last release whose source distribution holds the page's JavaScript (asv/www/vendor/).
VENDOR_RELEASE = "asv==0.5.1"
VENDOR_ARCHIVE = "asv-0.5.1.tar.gz"
VENDOR_STORE = Path(sys.prefix) / "share" / "funcbench"  # where dev.py puts it when it makes .venv
PIP_DOWNLOAD_S = 300
# asv 0.6.6's CDN file (the URL's last part) -> the file in asv 0.5.1's asv/www/vendor/ (the same
# releases, but Bootstrap 3.1.0 for 3.1.1; stupidtable unversioned for 1.0.1; md5 unminified).
CDN_TO_VENDOR = {
    "jquery-3.3.1.min.js": "jquery-3.3.1.min.js",
    "jquery.flot.min.js": "jquery.flot-0.8.3.min.js",
    "jquery.flot.time.min.js": "jquery.flot-0.8.3.time.min.js",
    "jquery.flot.selection.min.js": "jquery.flot-0.8.3.selection.min.js",
    "jquery.flot.categories.min.js": "jquery.flot-0.8.3.categories.min.js",
    "jquery.flot.orderBars.js": "jquery.flot.orderBars.js",
    "stupidtable.min.js": "stupidtable.js",
    "md5.min.js": "md5.js",
    "bootstrap.min.js": "bootstrap-3.1.0.min.js",
    "bootstrap.min.css": "bootstrap-3.1.0.min.css",
}
ASV_PAGE = "asv.html"
# A tag that loads something: <script src=...>, <link href=...>, CSS url(...) and @import.
_LOADS = re.compile(r"""<(?:script|link|img|iframe)\b[^>]*?\b(?:src|href)\s*=\s*["']?([^"'\s>]+)"""
                    r"""|url\(\s*["']?([^"')\s]+)|@import\s+["']([^"']+)""", re.I)


class DashboardError(Exception):
    """The dashboard cannot be made self-contained; the message is one line."""


def vendor_archive(store: Path = VENDOR_STORE) -> Path:
    """asv 0.5.1's source distribution: the copy in ``store``, else downloaded there by pip."""
    archive = store / VENDOR_ARCHIVE
    if archive.is_file():
        return archive
    store.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
               "--dest", str(store), VENDOR_RELEASE]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=PIP_DOWNLOAD_S)
    except subprocess.TimeoutExpired:
        raise DashboardError(f"pip download {VENDOR_RELEASE} (asv's page's JavaScript): no answer within "
                             f"{PIP_DOWNLOAD_S} s; check that this machine reaches the package registry") from None
    if proc.returncode != 0 or not archive.is_file():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no archive written"]
        raise DashboardError(f"pip download {VENDOR_RELEASE} (asv's page's JavaScript) failed: {tail[0]}")
    return archive


def vendor_files(archive: Path) -> Dict[str, bytes]:
    """The files of asv/www/vendor/ in asv 0.5.1's source distribution, by name."""
    files = {}
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            parts = Path(member.name).parts
            if member.isfile() and parts[-3:-1] == ("www", "vendor"):
                files[parts[-1]] = tar.extractfile(member).read()
    missing = sorted(set(CDN_TO_VENDOR.values()) - set(files))
    if missing:
        raise DashboardError(f"{archive} lacks {', '.join(missing)} in asv/www/vendor/")
    return files


def localize_asv_page(html: Path, archive: Path) -> Path:
    """asv's own page as ``html``/asv.html with its CDN files served from ``html``/vendor/."""
    index = html / "index.html"
    text = index.read_text()
    if "graphdisplay.js" not in text:
        raise DashboardError(f"{index} is not asv's page (asv publish writes it)")
    files = vendor_files(archive)
    (html / "vendor").mkdir(exist_ok=True)
    replaced = []

    def local(tag: re.Match) -> str:
        url = re.search(r'"(https?://[^"]+)"', tag.group(0)).group(1)
        name = url.rsplit("/", 1)[-1]
        if name not in CDN_TO_VENDOR:
            raise DashboardError(f"asv's page loads {url}, which funcbench has no local copy of")
        (html / "vendor" / CDN_TO_VENDOR[name]).write_bytes(files[CDN_TO_VENDOR[name]])
        replaced.append(name)
        # The integrity hashes are the CDN files'; the local copies are other bytes of the same release.
        text = re.sub(r'\s(integrity|crossorigin|referrerpolicy)="[^"]*"', "", tag.group(0))
        return text.replace(url, f"vendor/{CDN_TO_VENDOR[name]}")

    text = re.sub(r"<(?:script|link)\b[^>]*https?://[^>]*>", local, text)
    page = html / ASV_PAGE
    page.write_text(text)
    return page


def install_tachyon(html: Path) -> Path:
    """asv-tachyon's page as ``html``/index.html (its own assets under ``html``/assets/)."""
    try:
        from asv_tachyon import cli as tachyon
    except ImportError:
        raise DashboardError("asv-tachyon is not installed here (pip install asv-tachyon; dev.py installs it)") from None
    static = tachyon._static_dir()  # the wheel's prebuilt page; its install command copies the same files
    shutil.copy2(static / "index.html", html / "index.html")
    if (html / "assets").exists():
        shutil.rmtree(html / "assets")
    shutil.copytree(static / "assets", html / "assets")
    for name in ("favicon.svg", "favicon.ico"):
        if (static / name).is_file():
            shutil.copy2(static / name, html / name)
    return html / "index.html"


def outside_loads(html: Path) -> List[str]:
    """'file: URL' for every script, stylesheet, font or image a page in ``html`` would fetch
    from outside its folder (http(s)://, protocol-relative //host)."""
    found = []
    for path in sorted(html.rglob("*")):
        if path.suffix not in (".html", ".css") or not path.is_file():
            continue
        for match in _LOADS.finditer(path.read_text(errors="replace")):
            url = next(group for group in match.groups() if group)
            if re.match(r"(https?:)?//", url, re.I):
                found.append(f"{path.relative_to(html)}: {url}")
    return found


def make_self_contained(html: Path, archive: Path) -> List[Path]:
    """After ``asv publish`` into ``html``: asv's page offline as asv.html, asv-tachyon's as
    index.html; checks that nothing is fetched from outside ``html``. Returns both pages."""
    if not (html / "index.json").is_file():
        raise DashboardError(f"no {html / 'index.json'}: asv publish did not write this folder")
    asv_page = localize_asv_page(html, archive)  # reads asv's index.html, which tachyon's then replaces
    # asv-tachyon's install keeps asv's page under this name: the same page, offline, stays there too.
    shutil.copy2(asv_page, html / "index.legacy.html")
    pages = [install_tachyon(html), asv_page]
    outside = outside_loads(html)
    if outside:
        raise DashboardError(f"the dashboard still loads from outside its folder: {outside[0]}")
    return pages


def serve(html: Path, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Serve ``html`` until interrupted, printing the address first."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(html))

    class Quiet(handler.func):  # one line per request is noise on a terminal that shows the address
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer((host, port), functools.partial(Quiet, directory=str(html)))
    print(f"dashboard: http://{host}:{server.server_address[1]}/ (asv's own page: /{ASV_PAGE}); Ctrl-C stops",
          flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
