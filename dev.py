#!/usr/bin/env python3
"""One entry point for a fresh clone with only python3: makes .venv, installs, runs.

    python3 dev.py dashboard   # the main job: asv suite for HEAD, published dashboard
    python3 dev.py test        # the test suite, after installing what the tests need

Every step that reaches the network has a time limit and a small retry count, and a failure
ends in one line that names the step and what to do about it (never a hang, never a traceback).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
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
TOOLS = ["asv==0.6.6", "virtualenv", "pytest", "check-jsonschema"]
# The versions the asv matrix pins too (asv.conf.json); pip takes torch/torchvision from local disk here.
REQUIREMENTS = ["torch==2.14.1", "torchvision==0.29.1", "torchaudio==2.11.0", "scipy", *TOOLS]
STAMP = VENV / ".funcbench-requirements"
# One installed copy (~5.7 GB) plus the downloaded wheels (~3.3 GB) pip holds until it is done.
INSTALL_NEEDS_BYTES = 9e9
# The asv environment's own tooling, which .venv has in its own version.
NOT_SHARED = {"pip", "setuptools", "wheel"}
# Programs the tests run, and the Debian package of each: the dashboard test drives headless
# Chromium and fetches asv's JavaScript with npm, the instruction-count tests run valgrind,
# torch.compile's inductor needs a C++ compiler.
TEST_PROGRAMS = {"chromium": "chromium", "npm": "npm", "valgrind": "valgrind", "g++": "g++"}
# asv 0.6.6's index.html loads these from CDNs; the dashboard test serves npm's copies (the
# versions asv names; stupidtable 1.0.1 is not on npm, 1.1.3 is).
DASHBOARD_JS = ["blueimp-md5@2.19.0", "bootstrap@3.1.1", "flot-orderbars@1.0.0", "flot@0.8.3", "jquery@3.3.1",
                "stupid-table-plugin@1.1.3"]
VENDOR_DIR = ROOT / ".asv" / "js-vendor"
# Seconds a network step may take before it is called failed.
PIP_STEP_S, APT_UPDATE_S, APT_INSTALL_S, NPM_INSTALL_S = 1800, 600, 900, 300


class StepFailed(Exception):
    """A set-up step failed; the message is the one line the user sees."""


def run(*cmd, what: str = "", hint: str = "", timeout: float = PIP_STEP_S, **kwargs) -> None:
    """Run a set-up command within ``timeout`` seconds; StepFailed names ``what`` otherwise."""
    print("+", " ".join(str(c) for c in cmd), flush=True)
    what = what or " ".join(str(c) for c in cmd[:4])
    try:
        result = subprocess.run([str(c) for c in cmd], cwd=kwargs.pop("cwd", ROOT), timeout=timeout, **kwargs)
    except subprocess.TimeoutExpired:
        raise StepFailed(f"{what}: no result within {timeout:.0f} s" + (f"; {hint}" if hint else "")) from None
    except OSError as error:
        raise StepFailed(f"{what}: {error.strerror}" + (f"; {hint}" if hint else "")) from None
    if result.returncode != 0:
        raise StepFailed(f"{what} failed (exit {result.returncode}, see above)" + (f"; {hint}" if hint else ""))


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
    hint = "check that this machine reaches the package registry (pip config, proxy)"
    run(PYTHON, "-m", "pip", "install", "--quiet", *TOOLS, what="installing asv, virtualenv and pytest", hint=hint)
    run(PYTHON, "-c", ASV_SETUP, ROOT / "asv.conf.json", what="making asv's environment (torch & co.) in .asv/env",
        hint=hint, timeout=2 * PIP_STEP_S)
    for env_site in sorted(ASV_ENV_DIR.glob(f"*/{SITE}")):
        linked = share_installed(env_site, VENV / SITE)
        print(f"  linked {linked} files from {env_site.relative_to(ROOT)}", flush=True)
    # Whatever the asv environment did not hold (another version, another Python) pip installs.
    run(PYTHON, "-m", "pip", "install", "--quiet", *REQUIREMENTS, what="installing torch & co. into .venv", hint=hint)
    # --no-deps: the heavy dependencies are installed above, never re-resolved.
    run(PYTHON, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "-e", ".",
        what="installing funcbench into .venv")
    STAMP.write_text(wanted)


def ensure_test_programs() -> None:
    """Install the programs the tests need (TEST_PROGRAMS) with apt-get where they are missing;
    StepFailed saying what to install where that cannot be done here."""
    missing = sorted({package for program, package in TEST_PROGRAMS.items() if shutil.which(program) is None})
    if not missing:
        return
    by_hand = f"install them: apt-get install -y {' '.join(missing)}"
    if shutil.which("apt-get") is None:
        raise StepFailed(f"the tests need {', '.join(missing)}, and this machine has no apt-get; "
                         f"install them with its package manager")
    if os.geteuid() != 0:
        raise StepFailed(f"the tests need {', '.join(missing)}; not root here, so {by_hand} (with sudo)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    apt_options = ["-o", "Acquire::Retries=2", "-o", "Acquire::http::Timeout=30", "-o", "Acquire::https::Timeout=30"]
    run("apt-get", "update", "-qq", *apt_options, what="apt-get update", hint=by_hand, timeout=APT_UPDATE_S, env=env)
    run("apt-get", "install", "-y", "-qq", "--no-install-recommends", *apt_options, *missing,
        what=f"apt-get install {' '.join(missing)}", hint=by_hand, timeout=APT_INSTALL_S, env=env,
        stdout=subprocess.DEVNULL)


def fetch_dashboard_js(vendor: Path = VENDOR_DIR) -> Path:
    """npm-install (once) the JavaScript asv's dashboard loads from CDNs; returns node_modules.

    npm runs in a folder with its own package.json instead of with --prefix, which would also
    move npm's global configuration to <prefix>/etc/npmrc and drop the system's (on this image,
    the CA file that makes the registry's certificate trusted)."""
    modules = vendor / "node_modules"
    if all((modules / package.rsplit("@", 1)[0] / "package.json").is_file() for package in DASHBOARD_JS):
        return modules
    npm = shutil.which("npm")
    if npm is None:
        raise StepFailed("fetching the dashboard's JavaScript needs npm; install it: apt-get install -y npm")
    vendor.mkdir(parents=True, exist_ok=True)
    (vendor / "package.json").write_text('{"name": "funcbench-dashboard-js", "private": true}\n')
    run(npm, "install", "--no-audit", "--no-fund", "--no-update-notifier", "--fetch-retries=2",
        "--fetch-timeout=60000", *DASHBOARD_JS, cwd=vendor, timeout=NPM_INSTALL_S,
        what="npm install of the dashboard's JavaScript", hint="check that npm reaches its registry (npm config list)")
    return modules


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


MAIN_JOB_S = 900  # the main job's whole time on 2 cores, install included, whatever the suite grows into
PUBLISH_S = 60  # kept for asv publish and what follows the runs
STARTED = time.monotonic()


def _plan_runs(revision: str) -> list:
    """[(name, --bench regexes)] of the asv runs that fit in what is left of MAIN_JOB_S, by
    `funcbench main-job` (the committed cost table, scaled to this machine); prints what is
    left out and the command that runs it. Without a plan: the whole selection in one run."""
    seconds_left = MAIN_JOB_S - (time.monotonic() - STARTED) - PUBLISH_S
    try:
        answer = subprocess.run([str(PYTHON), "-m", "funcbench", "main-job", "--seconds-left", f"{seconds_left:.0f}"],
                                cwd=ROOT, capture_output=True, text=True, timeout=300)
        plan = json.loads(answer.stdout) if answer.returncode == 0 else None
    except (subprocess.TimeoutExpired, ValueError):
        plan = None
    if plan is None:
        print("dev.py dashboard: no main-job plan (funcbench main-job failed); running the whole selection", flush=True)
        selection = subprocess.run([str(PYTHON), "-m", "funcbench", "list", "--asv-bench"], cwd=ROOT,
                                   capture_output=True, text=True, timeout=300)
        bench = selection.stdout.strip() if selection.returncode == 0 else ""
        return [("the whole suite", [bench] if bench else [])]
    print(f"main job: {seconds_left:.0f} s left for asv runs; this machine runs the cost table's second in "
          f"{plan['speed']:.2f} s", flush=True)
    for part in plan["runs"]:
        print(f"  run: {part['name']}, {part['items']} parameter sets, ~{part['seconds']:.0f} s", flush=True)
    for part in plan["left_out"]:
        bench = " ".join(f"--bench {shlex.quote(b)}" for b in part["bench"])
        print(f"  left out (it does not fit in {MAIN_JOB_S} s here): {part['name']}, ~{part['seconds']:.0f} s; "
              f"run it: {VENV / 'bin' / 'asv'} run {revision} {bench}", flush=True)
    return [(part["name"], part["bench"]) for part in plan["runs"]]


def dashboard(args) -> None:
    """The default suite (cpu, small: asv.conf.json's matrix) for HEAD, then the dashboard.

    The launch method (forkserver) is set in asv.conf.json, so every asv command gets it."""
    if _timed(*ASV, "machine", "--yes"):
        sys.exit("dev.py dashboard: asv machine failed")
    has_parent = subprocess.run(["git", "rev-parse", "-q", "--verify", "HEAD^"], cwd=ROOT,
                                capture_output=True).returncode == 0
    # HEAD^! is "HEAD only"; a root commit has no HEAD^, and ALL is then that one commit.
    revision = "HEAD^!" if has_parent else "ALL"
    # No --show-stderr: it prints a skip reason for every n/a combination; asv still names
    # failures, and --show-stderr tells why. The --bench regexes leave out the parameter sets this
    # run makes n/a by their params alone (the other device, the clock it does not time with): asv
    # would start a process for each in every round (~90 s of the run) to record the NaN it
    # records anyway. asv adds each run's results to the commit's results file.
    run_code = 0
    for _name, bench in _plan_runs(revision):
        run_code = _timed(*ASV, "run", revision, *[arg for regex in bench for arg in ("--bench", regex)]) or run_code
    # Publish even when some benchmark failed: the dashboard shows which.
    if _timed(*ASV, "publish"):
        sys.exit("dev.py dashboard: asv publish failed")
    print(f"dashboard: {ROOT / 'html' / 'index.html'}")
    print(f"serve it:  {VENV / 'bin' / 'asv'} preview   (from {ROOT})")
    print(f"dev.py dashboard took {time.monotonic() - STARTED:.0f} s")
    if run_code:
        sys.exit(f"dev.py dashboard: asv run exited {run_code} (some benchmarks failed; see above)")


def test(args) -> None:
    ensure_test_programs()
    fetch_dashboard_js()
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
    # Bounded network waits for every pip, asv's included: 60 s per connection, 2 retries.
    os.environ.setdefault("PIP_TIMEOUT", "60")
    os.environ.setdefault("PIP_RETRIES", "2")
    try:
        ensure_venv()
        {"dashboard": dashboard, "test": test}[args.command](args)
    except StepFailed as error:
        sys.exit(f"dev.py {args.command}: {error}")


if __name__ == "__main__":
    main()
