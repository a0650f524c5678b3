"""The release history as a git repository asv can read: one root commit per torch release,
tagged ``v<version>``, so that asv's own run, publish, regressions and compare work along
releases (asv draws a result only at a commit of its conf's branches or a tag's target, and
places it by ``git rev-list --all --date-order``).

Each commit depends on its release alone (a fixed tree, name, e-mail and message, no parent):
its hash is the same on every machine and does not change when other releases are added, so
results recorded at it are never orphaned. Its author date is the release's date (what asv
shows); its committer date is a slot computed from the version (what orders unrelated roots
for ``--date-order``), so the axis is in version order whatever the release dates. ``main``
points to the newest release (asv needs one branch; tag targets are drawn on it).
"""
from __future__ import annotations

import datetime
import os
import subprocess
import zlib
from pathlib import Path
from typing import Dict, Optional, Sequence

from packaging.version import Version

BRANCH = "main"
IDENTITY = ("funcbench", "funcbench@localhost")
README = ("The torch release history of funcbench: one root commit per torch release, tagged v<version>.\n"
          "Written by `funcbench releases`; see docs/releases.md of funcbench.\n")
BASE = 1_000_000_000  # 2001-09-09: every slot lies after it


class HistoryError(RuntimeError):
    """git failed on the history repository: one line for the user."""


def slot(version: Version) -> int:
    """The committer timestamp that orders ``version`` on the axis as PEP 440 does: major, minor
    and micro in fixed fields, then (in the last 10,000 s) dev < a < b < rc < final < post, a
    local build (+cpu, +git...) after its public version and before the next one."""
    major, minor, micro = (list(version.release) + [0, 0])[:3]
    width = 0  # room after the slot for local builds of this version (+cpu, +git...), ordered by a hash
    if version.pre:
        kind, number = version.pre
        sub, width = {"a": 3000, "b": 4000, "rc": 5000}[kind] + min(number, 99) * 10, 9
    elif version.dev is not None:
        dev = version.dev
        if dev > 19_000_000:  # a nightly's date, YYYYMMDD: days since 2020
            try:
                dev = (datetime.date(dev // 10000, dev // 100 % 100, dev % 100) - datetime.date(2020, 1, 1)).days
            except ValueError:
                dev = 0
        sub = max(0, min(dev, 2999))
    elif version.post is not None:
        sub, width = 9400 + min(version.post, 98) * 6, 5
    else:
        sub, width = 9000, 399
    if version.local and width:
        sub += 1 + zlib.crc32(version.local.encode()) % width
    return BASE + major * 100_000_000 + min(minor, 99) * 1_000_000 + min(micro, 99) * 10_000 + sub


def tag_name(release: str) -> str:
    return f"v{release}"


def _git(repo: Path, *args: str, env: Optional[Dict[str, str]] = None, stdin: Optional[str] = None) -> str:
    full = dict(os.environ, GIT_CONFIG_NOSYSTEM="1", HOME=str(repo), **(env or {}))  # no user config: same bytes everywhere
    try:
        out = subprocess.run(["git", "-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false", *args], cwd=repo,
                             env=full, input=stdin, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise HistoryError(f"git {args[0]} in {repo}: {error}") from None
    if out.returncode != 0:
        raise HistoryError(f"git {args[0]} in {repo} failed: {(out.stderr.strip().splitlines() or ['?'])[-1]}")
    return out.stdout.strip()


def ensure(repo: Path) -> Path:
    """The history repository at ``repo`` (made where it is missing)."""
    repo = Path(repo)
    if not (repo / ".git").is_dir():
        repo.mkdir(parents=True, exist_ok=True)
        _git(repo, "init", "-q", "-b", BRANCH)
    return repo


def commit(repo: Path, release: str, date: str) -> str:
    """The commit of ``release`` (made and tagged where missing; ``main`` moved where it is the
    newest); ``date``: the release's date, ISO 8601. Returns its full hash."""
    ensure(repo)
    version = Version(release)
    author = int(datetime.datetime.fromisoformat(date.replace("Z", "+00:00")).timestamp())
    blob = _git(repo, "hash-object", "-w", "--stdin", stdin=README)
    tree = _git(repo, "mktree", stdin=f"100644 blob {blob}\tREADME\n")
    name, email = IDENTITY
    env = dict(GIT_AUTHOR_NAME=name, GIT_AUTHOR_EMAIL=email, GIT_AUTHOR_DATE=f"{author} +0000",
               GIT_COMMITTER_NAME=name, GIT_COMMITTER_EMAIL=email, GIT_COMMITTER_DATE=f"{slot(version)} +0000")
    hash_ = _git(repo, "commit-tree", tree, "-m", f"torch {release}", env=env)
    _git(repo, "tag", "-f", tag_name(release), hash_)
    newest = max(releases(repo), key=Version)
    _git(repo, "update-ref", f"refs/heads/{BRANCH}", _git(repo, "rev-parse", tag_name(newest) + "^{commit}"))
    return hash_


def releases(repo: Path) -> Dict[str, str]:
    """release -> commit hash, for every tag of the history."""
    if not (Path(repo) / ".git").is_dir():
        return {}
    out = {}
    for line in _git(repo, "for-each-ref", "--format=%(refname:strip=2) %(objectname)", "refs/tags").splitlines():
        tag, hash_ = line.split()
        if tag.startswith("v"):
            out[tag[1:]] = hash_
    return out


def axis(repo: Path, names: Sequence[str]) -> Dict[str, int]:
    """release -> its place on asv's axis (its index in ``git rev-list --all --date-order --reverse``)."""
    order = _git(repo, "rev-list", "--all", "--date-order", "--reverse").split()
    known = releases(repo)
    return {name: order.index(known[name]) for name in names if known.get(name) in order}
