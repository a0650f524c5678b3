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
# asv-tachyon: the dashboard's page (funcbench publish; docs/asv-suite.md#the-dashboard).
# uv: funcbench releases makes one environment per torch release from one package cache (docs/releases.md).
TOOLS = ["asv==0.6.6", "asv-tachyon==0.5.8", "virtualenv", "pytest", "check-jsonschema", "uv==0.13.9"]
# The versions the asv matrix pins too (asv.conf.json); pip takes torch/torchvision from local disk here.
REQUIREMENTS = ["torch==2.14.1", "torchvision==0.29.1", "torchaudio==2.11.0", "scipy", *TOOLS]
STAMP = VENV / ".funcbench-requirements"
# One installed copy (~5.7 GB) plus the downloaded wheels (~3.3 GB) pip holds until it is done.
INSTALL_NEEDS_BYTES = 9e9
# The asv environment's own tooling, which .venv has in its own version.
NOT_SHARED = {"pip", "setuptools", "wheel"}
# Programs the tests run, and the Debian package of each: the dashboard test drives headless
# Chromium, the instruction-count tests run valgrind, torch.compile's inductor needs a C++ compiler.
TEST_PROGRAMS = {"chromium": "chromium", "valgrind": "valgrind", "g++": "g++"}
# Seconds a network step may take before it is called failed.
PIP_STEP_S, APT_UPDATE_S, APT_INSTALL_S = 1800, 600, 900


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


def _left_out_line(part: dict, revision: str) -> str:
    bench = " ".join(f"--bench {shlex.quote(b)}" for b in part["bench"])
    return (f"  left out (it does not fit in {MAIN_JOB_S} s here): {part['name']}, ~{part['seconds']:.0f} s; "
            f"run it: {VENV / 'bin' / 'asv'} run {revision} {bench}")


def _plan(done: list) -> "dict | None":
    """`funcbench main-job`'s plan of the parts not ``done`` in what is left of MAIN_JOB_S (the
    committed cost table, scaled to this machine), or None where it fails."""
    seconds_left = MAIN_JOB_S - (time.monotonic() - STARTED) - PUBLISH_S
    command = [str(PYTHON), "-m", "funcbench", "main-job", "--seconds-left", f"{seconds_left:.0f}"]
    command += [arg for part in done for arg in ("--done", part)]
    try:
        answer = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
        plan = json.loads(answer.stdout) if answer.returncode == 0 else None
    except (subprocess.TimeoutExpired, ValueError):
        return None
    if plan is not None:
        print(f"main job: {seconds_left:.0f} s left for asv runs; this machine runs the cost table's second in "
              f"{plan['speed']:.2f} s; plan: " + ("; ".join(f"{r['name']}, {r['items']} parameter sets, "
                                                             f"~{r['seconds']:.0f} s" for r in plan["runs"]) or "nothing more fits"),
              flush=True)
    return plan


def _run_planned(revision: str) -> int:
    """The asv runs of the main job, one at a time, planned again after each with the time
    really left (the estimates err by 15-20 %); prints what is left out, with the command that
    runs it. Without a plan: the whole selection in one run. Returns asv's last failing exit."""
    done, rests, code = [], [], 0
    plan = _plan(done)
    if plan is None:
        print("dev.py dashboard: no main-job plan (funcbench main-job failed); running the whole selection", flush=True)
        selection = subprocess.run([str(PYTHON), "-m", "funcbench", "list", "--asv-bench"], cwd=ROOT,
                                   capture_output=True, text=True, timeout=300)
        bench = selection.stdout.strip() if selection.returncode == 0 else ""
        return _timed(*ASV, "run", revision, *(["--bench", bench] if bench else []))
    while plan is not None and plan["runs"]:
        part = plan["runs"][0]
        code = _timed(*ASV, "run", revision, *[arg for regex in part["bench"] for arg in ("--bench", regex)]) or code
        done.append(part["part"])
        # what of this part the plan left out (the time series that did not fit) stays left out
        rests += [p for p in plan["left_out"] if p["part"] == part["part"]]
        if part["part"] == "the whole suite":
            return code
        plan = _plan(done)
    for part in rests + (plan["left_out"] if plan else []):
        print(_left_out_line(part, revision), flush=True)
    return code


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
    run_code = _run_planned(revision)
    # Publish even when some benchmark failed: the dashboard shows which. funcbench publish makes
    # it self-contained (no script from a CDN), so it opens offline.
    if _timed(PYTHON, "-m", "funcbench", "publish"):
        sys.exit("dev.py dashboard: funcbench publish failed")
    print(f"dashboard: {ROOT / 'html' / 'index.html'} (asv's own page: html/asv.html)")
    print(f"serve it:  {VENV / 'bin' / 'funcbench'} publish --serve   (from {ROOT}; a browser reads "
          f"the results only from a server, not from file://)")
    print(f"dev.py dashboard took {time.monotonic() - STARTED:.0f} s")
    if run_code:
        sys.exit(f"dev.py dashboard: asv run exited {run_code} (some benchmarks failed; see above)")


def test(args) -> None:
    ensure_test_programs()
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
