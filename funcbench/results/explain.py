"""Showing why a count moved: the functions whose self instructions changed most between two
profiles of one cell (funcbench.results.profiles), under ``funcbench compare --explain``.

Functions are matched across the two sides by symbol and object file name (not the object's
path, which names the environment, nor the source file, which names the build's folder). The
listed functions, one ``other`` line for the rest and the ``total`` line add up exactly, in
instructions, before and after.

Interpreter noise is grouped into one line, as torch.utils.benchmark's ``CallgrindStats.denoise``
drops it: CPython's dictionary lookups by name (torch filters ``dictobject.c:lookdict_unicode``;
Python 3.11 calls the same lookups ``unicodekeys_lookup_unicode`` and ``_Py_dict_lookup``), whose
counts follow how the interpreter's dicts happen to be laid out rather than the code. ``raw``
lists them one by one.
"""
from __future__ import annotations

import dataclasses
import os
import re
from typing import Dict, List, Optional, Sequence, Tuple

from funcbench.results.profiles import CellProfile, Function

NOISE = re.compile(r"(lookdict\w*|unicodekeys_lookup_\w+|dictkeys_generic_lookup|_Py_dict_lookup)")
NOISE_LABEL = "interpreter noise: CPython's dict lookups by name (CallgrindStats.denoise's)"
TOP = 5  # functions listed per row by default
WIDTH = 240  # a symbol longer than this keeps its head and tail

Key = Tuple[str, str]  # (symbol, object file name)


@dataclasses.dataclass(frozen=True)
class Mover:
    label: str
    object: str
    before: int
    after: int

    @property
    def delta(self) -> int:
        return self.after - self.before


@dataclasses.dataclass
class Explanation:
    movers: List[Mover]  # the largest |Δ| first
    other: Mover  # every function not listed
    total: Mover

    def share(self, mover: Mover) -> Optional[float]:
        return mover.delta / self.total.delta if self.total.delta else None


def _key(function: Function, raw: bool) -> Key:
    if not raw and NOISE.fullmatch(function.name):
        return (NOISE_LABEL, "")
    return (function.name, os.path.basename(function.object))


def _grouped(profile: CellProfile, raw: bool) -> Dict[Key, int]:
    out: Dict[Key, int] = {}
    for function, count in profile.functions.items():
        key = _key(function, raw)
        out[key] = out.get(key, 0) + count
    return out


def explain(before: CellProfile, after: CellProfile, top: int = TOP, raw: bool = False) -> Explanation:
    """The ``top`` functions with the largest |Δ| of self instructions (ties by name), the rest as
    one line, and the totals."""
    a, b = _grouped(before, raw), _grouped(after, raw)
    moved = sorted((k for k in set(a) | set(b) if a.get(k, 0) != b.get(k, 0)),
                   key=lambda k: (-abs(b.get(k, 0) - a.get(k, 0)), k))
    movers = [Mover(short_name(name), obj, a.get((name, obj), 0), b.get((name, obj), 0)) for name, obj in moved[:top]]
    total = Mover("total", "", sum(a.values()), sum(b.values()))
    others = len(set(a) | set(b)) - len(movers)
    other = Mover(f"other ({others:,} functions)", "", total.before - sum(m.before for m in movers),
                  total.after - sum(m.after for m in movers))
    return Explanation(movers, other, total)


def short_name(name: str, width: int = WIDTH) -> str:
    """A C++ symbol without its parameter lists, anonymous namespaces and lambda signatures
    (``{lambda(...)#1}`` becomes ``λ``), so that the kernel's own name shows; at most ``width``
    characters (head … tail)."""
    if name.startswith("_Z"):  # no demangler could: its identifiers, so that the kernel's name shows
        name = "mangled: " + "::".join(_identifiers(name))
    out, depth = [], 0
    for char in name.replace("(anonymous namespace)::", ""):
        if char == "(":
            depth += 1
            if depth == 1:
                out.append("(")
            continue
        if char == ")":
            depth = max(0, depth - 1)
            if depth == 0:
                out.append(")")
            continue
        if depth == 0:
            out.append(char)
    text = "".join(out)
    text = re.sub(r"\{lambda\(\)#\d+\}|'lambda\d*'\(\)", "λ", text)  # GCC's and LLVM's spelling
    text = text.replace("::operator()()", "").replace("() const", "").replace(" const", "").replace("()", "")
    text = re.sub(r"\s+", " ", text).strip()
    if len(text) > width:
        text = text[:width // 2 - 1] + "…" + text[-(width // 2):]
    return text


def _identifiers(mangled: str) -> List[str]:
    """The <length><identifier> runs of an Itanium-mangled symbol, in order."""
    found, index = [], 0
    while index < len(mangled):
        digits = re.match(r"\d+", mangled[index:])
        if digits is None:
            index += 1
            continue
        before = mangled[index - 1:index]  # S8_, T0_, E8_: a substitution or a lambda's number, not a length
        length, index = int(digits.group()), index + len(digits.group())
        word = mangled[index:index + length]
        if length and re.fullmatch(r"[A-Za-z_]\w*", word) and not (before in ("S", "T", "E") and word[0] == "_"):
            found.append(word)
            index += length
    return found


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _signed(value: int) -> str:
    return f"{value:+,}"


def table(heading: str, explanation: Explanation) -> str:
    """One row's movers as a markdown table under a heading line."""
    lines = [heading, "", "| function | object | before | after | Δ | share of Δ |", "|---|---|---:|---:|---:|---:|"]
    for mover in [*explanation.movers, explanation.other, explanation.total]:
        share = explanation.share(mover)
        lines.append(f"| {_cell(mover.label)} | {_cell(mover.object)} | {mover.before:,} | {mover.after:,} | "
                     f"{_signed(mover.delta)} | {'n/a' if share is None else f'{share * 100:.1f} %'} |")
    return "\n".join(lines)


def parse_explain(value: Optional[str]) -> Tuple[bool, int]:
    """``--explain``'s value: (every row?, functions per row) from ``N``, ``all``, ``all:N`` or
    nothing (the flagged rows, TOP functions); ValueError for anything else."""
    if not value:
        return False, TOP
    if value == "all":
        return True, TOP
    every, number = (True, value[4:]) if value.startswith("all:") else (False, value)
    if not number.isdigit() or int(number) < 1:
        raise ValueError(value)
    return every, int(number)


def unexplained_line(labels: Sequence[str]) -> str:
    return (f"{len(labels)} row(s) cannot be explained (no per-function counts kept with the count: counted "
            f"before funcbench kept them, by another tool, or by a plain asv run in an existing environment without "
            f"FUNCBENCH_PROFILES_DIR): {', '.join(labels)}")
