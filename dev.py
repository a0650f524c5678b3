#!/usr/bin/env python3
"""One entry point for a fresh clone with only python3: makes .venv, installs, runs.

    python3 dev.py dashboard   # the main job: asv suite for HEAD, published dashboard
    python3 dev.py test        # the test suite
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PYTHON = VENV / "bin" / "python"
# The versions the asv matrix pins too (asv.conf.json); pip takes torch/torchvision from local disk here.
REQUIREMENTS = ["torch==2.14.1", "torchvision==0.29.1", "torchaudio==2.11.0", "scipy",
                "asv==0.6.6", "virtualenv", "pytest"]
STAMP = VENV / ".funcbench-requirements"


def run(*cmd, **kwargs) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, cwd=ROOT, **kwargs)


def ensure_venv() -> None:
    """Create .venv and install what the suite needs, once (a stamp records what was installed)."""
    wanted = "\n".join(REQUIREMENTS)
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    if not PYTHON.exists():
        venv.create(VENV, with_pip=True)
    run(PYTHON, "-m", "pip", "install", "--quiet", *REQUIREMENTS)
    # --no-deps: the heavy dependencies are installed above, never re-resolved.
    run(PYTHON, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "-e", ".")
    STAMP.write_text(wanted)


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
    try:
        ensure_venv()
    except subprocess.CalledProcessError as error:
        sys.exit(f"dev.py: installing the environment failed ({error})")
    {"dashboard": dashboard, "test": test}[args.command](args)


if __name__ == "__main__":
    main()
