#!/usr/bin/env python3
"""One entry point for a fresh clone with only python3: makes .venv, installs, runs.

    python3 dev.py dashboard   # the main job: asv suite for HEAD, published dashboard
    python3 dev.py test        # the test suite
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
import venv
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PYTHON = VENV / "bin" / "python"
SITE = f"lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages"
ASV_ENV_DIR = ROOT / ".asv" / "env"  # asv.conf.json's env_dir
TOOLS = ["asv==0.6.6", "virtualenv", "pytest"]
# The versions the asv matrix pins too (asv.conf.json); pip takes torch/torchvision from local disk here.
REQUIREMENTS = ["torch==2.14.1", "torchvision==0.29.1", "torchaudio==2.11.0", "scipy", *TOOLS]
STAMP = VENV / ".funcbench-requirements"
# One installed copy (~5.7 GB) plus the downloaded wheels (~3.3 GB) pip holds until it is done.
INSTALL_NEEDS_BYTES = 9e9
# The asv environment's own tooling, which .venv has in its own version.
NOT_SHARED = {"pip", "setuptools", "wheel"}


def run(*cmd, **kwargs) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, cwd=ROOT, **kwargs)


def ensure_venv() -> None:
    """Create .venv and install what the suite needs, once (a stamp records what was installed).

    torch & co. are ~5.7 GB and asv's matrix environment needs the same versions: asv installs
    them there first, and .venv gets hard links to those files, so one copy sits on disk
    (two copies plus pip's download caches filled a CI disk)."""
    wanted = "\n".join(REQUIREMENTS)
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    free = shutil.disk_usage(ROOT).free
    if free < INSTALL_NEEDS_BYTES and not any(ASV_ENV_DIR.glob(f"*/{SITE}/torch")):
        print(f"dev.py: warning: {free / 1e9:.1f} GB free here; installing torch & co. takes about "
              f"{INSTALL_NEEDS_BYTES / 1e9:.0f} GB while pip downloads them", file=sys.stderr, flush=True)
    if not PYTHON.exists():
        venv.create(VENV, with_pip=True)
    run(PYTHON, "-m", "pip", "install", "--quiet", *TOOLS)
    run(PYTHON, "-c", ASV_SETUP, ROOT / "asv.conf.json")  # the matrix environment(s) in .asv/env
    for env_site in sorted(ASV_ENV_DIR.glob(f"*/{SITE}")):
        linked = share_installed(env_site, VENV / SITE)
        print(f"  linked {linked} files from {env_site.relative_to(ROOT)}", flush=True)
    # Whatever the asv environment did not hold (another version, another Python) pip installs.
    run(PYTHON, "-m", "pip", "install", "--quiet", *REQUIREMENTS)
    # --no-deps: the heavy dependencies are installed above, never re-resolved.
    run(PYTHON, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "-e", ".")
    STAMP.write_text(wanted)


def share_installed(source_site: Path, target_site: Path) -> int:
    """Hard-link the distributions installed in ``source_site`` into ``target_site``; returns
    the number of files linked. Each distribution's RECORD names its files, so pip in the
    target sees them as installed. Files outside site-packages (console scripts, whose
    shebang names the other interpreter) are left out; a distribution the target already
    has is left alone; where no hard link can be made (another file system) it is copied."""
    target_site.mkdir(parents=True, exist_ok=True)
    present = {dist.metadata["Name"].lower() for dist in metadata.distributions(path=[str(target_site)])}
    linked = 0
    for dist in metadata.distributions(path=[str(source_site)]):
        name = dist.metadata["Name"].lower()
        if name in NOT_SHARED or name in present:
            continue
        for file in dist.files or ():
            source, target = source_site / file, target_site / file
            if file.parts[0] == ".." or not source.is_file() or target.exists():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source, target)
            except OSError:
                shutil.copy2(source, target)
            linked += 1
    return linked


# `asv setup` through asv's API: asv 0.6.6's command line exits 1 (printing the list of
# environments) even when every environment was made, so its exit status says nothing.
ASV_SETUP = ("import sys; from asv.console import log; from asv.config import Config; "
             "from asv.commands.setup import Setup; log.enable(); Setup.run(Config.load(sys.argv[1])); log.flush()")
ASV = (PYTHON, "-m", "asv")  # the .venv's asv: the version asv.conf.json was written for


def _timed(*cmd) -> int:
    """Run a command, print its wall time, return its exit status (not raising)."""
    print("+", " ".join(str(c) for c in cmd), flush=True)
    start = time.monotonic()
    code = subprocess.run([str(c) for c in cmd], cwd=ROOT).returncode
    print(f"  ({time.monotonic() - start:.0f} s, exit {code})", flush=True)
    return code


def dashboard(args) -> None:
    """The default suite (cpu, small: asv.conf.json's matrix) for HEAD, then the dashboard.

    The launch method (forkserver) is set in asv.conf.json, so every asv command gets it."""
    start = time.monotonic()
    if _timed(*ASV, "machine", "--yes"):
        sys.exit("dev.py dashboard: asv machine failed")
    has_parent = subprocess.run(["git", "rev-parse", "-q", "--verify", "HEAD^"], cwd=ROOT,
                                capture_output=True).returncode == 0
    # HEAD^! is "HEAD only"; a root commit has no HEAD^, and ALL is then that one commit.
    # No --show-stderr: it prints a skip reason for every n/a combination (3 in 4 of them are
    # another preset or device); asv still names failures, and --show-stderr tells why.
    run_code = _timed(*ASV, "run", "HEAD^!" if has_parent else "ALL")
    # Publish even when some benchmark failed: the dashboard shows which.
    if _timed(*ASV, "publish"):
        sys.exit("dev.py dashboard: asv publish failed")
    print(f"dashboard: {ROOT / 'html' / 'index.html'}")
    print(f"serve it:  {VENV / 'bin' / 'asv'} preview   (from {ROOT})")
    print(f"dev.py dashboard took {time.monotonic() - start:.0f} s")
    if run_code:
        sys.exit(f"dev.py dashboard: asv run exited {run_code} (some benchmarks failed; see above)")


def test(args) -> None:
    result = subprocess.run([str(PYTHON), "-m", "pytest", *args.pytest_args], cwd=ROOT)
    if result.returncode == 5:  # pytest collected nothing: a broken suite, not a pass
        print("dev.py test: pytest collected no tests", file=sys.stderr)
    sys.exit(result.returncode)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("dashboard", help="run the asv suite for HEAD and publish the dashboard")
    commands.add_parser("test", help="run the tests (extra arguments go to pytest)")
    # parse_known_args: `test -k cli` must pass -k to pytest (REMAINDER refuses a leading option).
    args, extra = parser.parse_known_args()
    if extra and args.command != "test":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.pytest_args = extra
    # pip's download cache would hold a third copy of torch & co. (~3.3 GB of wheels, once per
    # pip version); each environment is installed once, so the cache saves nothing here.
    os.environ.setdefault("PIP_NO_CACHE_DIR", "1")
    try:
        ensure_venv()
    except subprocess.CalledProcessError as error:
        sys.exit(f"dev.py: installing the environment failed ({error})")
    {"dashboard": dashboard, "test": test}[args.command](args)


if __name__ == "__main__":
    main()
