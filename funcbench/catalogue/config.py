"""The suite's settings, read in one place (this module imports no torch): FUNCBENCH_* environment variables and asv.conf.json.

Like scikit-learn's ``get_from_config``: every variable is declared once here with its default
and what it accepts, and the asv suite, the results reader, the audit and the CLI ask this
module rather than ``os.environ``. A bad value raises ``SettingError`` with one line that
names the valid values.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Mapping, Optional, Sequence, Tuple


ROOT = Path(__file__).resolve().parents[2]  # the repository: asv.conf.json, benchmarks/
PRESETS = ("small", "full")  # model input sizes
ORIGINAL_PRESET = "full"  # the original script's sizes: `funcbench run`'s default, no [preset] tag in reports
TIERS = ("light", "medium", "heavy")  # cost tiers of models (registry.ModelSpec.tier)


class SettingError(ValueError):
    """A FUNCBENCH_* variable with a value the suite cannot use: one line for the user."""


class UnknownName(ValueError):
    """A model, task, API, preset or device name that does not exist; names the choices."""


def choose(kind: str, name: str, choices: Sequence[str]) -> str:
    """``name`` if it is one of ``choices``, else UnknownName naming them."""
    if name not in choices:
        raise UnknownName(f"unknown {kind} {name!r}; choose from: {', '.join(choices)}")
    return name


@dataclasses.dataclass(frozen=True)
class Setting:
    """One environment variable funcbench reads: the one place its name, default and valid values live."""
    name: str
    default: str
    accepts: str  # what a valid value looks like, for the error message
    pattern: str  # a full match of this regular expression is valid
    what: str = ""  # what it sets (docs/asv-suite.md's settings table is made from these)

    def parse(self, value: str) -> str:
        if re.fullmatch(self.pattern, value) is None:
            raise SettingError(f"{self.name}={value!r} is not valid; use {self.accepts}")
        return value


# The suite's preset (and the library's default): the one place the default preset is stated.
PRESET = Setting("FUNCBENCH_PRESET", "small", " or ".join(PRESETS), "|".join(map(re.escape, PRESETS)),
                 f"model input sizes ({ORIGINAL_PRESET}: the original's)")
DEVICE = Setting("FUNCBENCH_DEVICE", "cpu", "cpu, cuda or cuda:N", r"cpu|cuda(:\d+)?",
                 "device; CUDA asked for where none is available stops the run with one line (checked in a child "
                 "process: the suite's import never initialises CUDA in asv's forkserver parent)")
# What track_instructions counts: tiers, models or model:task:api cells, comma separated, or
# all / none. Counting under callgrind costs ~150x the op's time, affordable by default for the
# light tier only (docs/instruction-counts.md).
INSTRUCTIONS = Setting("FUNCBENCH_INSTRUCTIONS", "light",
                       f"a comma-separated list of tiers ({', '.join(TIERS)}), models or model:task:api cells, "
                       f"or all, or none", r"all|none|\w+(:\w+:\w+)?(,\w+(:\w+:\w+)?)*",
                       "what track_instructions counts (docs/instruction-counts.md)")
# The asv twin of `funcbench run --run-slow-tasks`: every supported task, not only the defaults.
RUN_SLOW_TASKS = Setting("FUNCBENCH_RUN_SLOW_TASKS", "0", "0 or 1", "0|1",
                         "1: every supported task, not only the defaults (the asv twin of --run-slow-tasks)")
# TEST-ONLY: "model:task:api:factor" makes that one cell do factor times its work (funcbench/measurement/injection.py).
INJECT_SLOWDOWN = Setting("FUNCBENCH_INJECT_SLOWDOWN", "", "model:task:api:factor (test-only)",
                          r"|\w+:\w+:\w+:\d+(\.\d+)?",
                          "**test-only**: that one cell does factor x its work per call (an interpreter loop after "
                          "the op: real time and real instructions). Never set it for real results")
# TEST-ONLY: "model:task:api:op" adds one real ATen op (cumsum or sort) after that cell's in its counted
# calls (funcbench/measurement/injection.py): the tests check that compare --explain names its kernel.
INJECT_OP = Setting("FUNCBENCH_INJECT_OP", "", "model:task:api:op, op one of cumsum, sort (test-only)",
                    r"|\w+:\w+:\w+:(cumsum|sort)",
                    "**test-only**: that one cell's counted calls also run one ATen op (instruction counts only), "
                    "for checking that `compare --explain` names its kernel. Never set it for real results")
# The clocks a time benchmark reads (docs/cpu-time.md): wall (time_op, time_compiled_op) and the calling
# thread's CPU time (time_cpu_op, time_cpu_compiled_op). Unset: DEFAULT_CLOCKS of the run's device.
CLOCKS = Setting("FUNCBENCH_CLOCKS", "", "wall, cpu or wall,cpu", r"wall|cpu|wall,cpu|cpu,wall",
                 "which clocks time the ops; unset: the CPU clock on a CPU device (neighbours cannot move it, "
                 "docs/cpu-time.md), the wall clock, synchronized, on CUDA (GPU work is not CPU time)")
# Where `funcbench releases` keeps its environments, history, results and dashboard (docs/releases.md).
RELEASES_DIR = Setting("FUNCBENCH_RELEASES_DIR", "", "a folder", r".*",
                       "the releases folder of `funcbench releases` (unset: .releases in the checkout; --dir wins)")
# Where asv's benchmark process keeps each counted cell's per-function instructions before funcbench files
# them beside asv's results (funcbench/results/profiles.py). funcbench's asv adapter sets it; set it yourself
# only for a plain `asv run -E existing:...`, which otherwise keeps none (docs/instruction-counts.md).
PROFILES_DIR = Setting("FUNCBENCH_PROFILES_DIR", "", "a folder", r".*",
                       "where counting keeps per-function instructions for `compare --explain` (unset: "
                       "<results_dir>/funcbench-profiles, found from asv's ASV_CONF_DIR; set it for a plain "
                       "`asv run -E existing:...`)")
SETTINGS = (PRESET, DEVICE, CLOCKS, INSTRUCTIONS, RUN_SLOW_TASKS, INJECT_SLOWDOWN, INJECT_OP, RELEASES_DIR,
            PROFILES_DIR)
# Each device kind's clocks when FUNCBENCH_CLOCKS is unset: one clock each, since the main job has room for
# one timing of every cell on 2 cores (docs/cpu-time.md).
DEFAULT_CLOCKS = {"cpu": ("cpu",), "cuda": ("wall",)}


def get(setting: Setting, environ: Optional[Mapping[str, str]] = None) -> str:
    """The setting's value in ``environ`` (default: this process's environment), validated."""
    value = (os.environ if environ is None else environ).get(setting.name)
    return setting.default if value is None or value == "" else setting.parse(value)


def instruction_selection(environ: Optional[Mapping[str, str]] = None) -> Tuple[str, ...]:
    """FUNCBENCH_INSTRUCTIONS as a tuple of tokens: tiers, models or model:task:api cells."""
    value = get(INSTRUCTIONS, environ)
    if value == "all":
        return TIERS
    return () if value == "none" else tuple(value.split(","))


def run_slow_tasks(environ: Optional[Mapping[str, str]] = None) -> bool:
    return get(RUN_SLOW_TASKS, environ) == "1"


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """What one asv run measures, from its FUNCBENCH_* variables: the preset, the device, the task
    set (defaults, or every supported task) and the instruction-count selection."""
    preset: str = PRESET.default
    device: str = DEVICE.default
    run_slow_tasks: bool = RUN_SLOW_TASKS.default == "1"
    instructions: Tuple[str, ...] = tuple(INSTRUCTIONS.default.split(","))
    clock_setting: str = CLOCKS.default  # FUNCBENCH_CLOCKS as given ("": the device's default)

    @classmethod
    def from_environ(cls, environ: Optional[Mapping[str, str]] = None) -> "RunSettings":
        return cls(get(PRESET, environ), get(DEVICE, environ), run_slow_tasks(environ), instruction_selection(environ),
                   get(CLOCKS, environ))

    @property
    def device_kind(self) -> str:
        """cpu or cuda: the device param of the suite's benchmarks (FUNCBENCH_DEVICE without its index)."""
        return self.device.split(":")[0]

    @property
    def clocks(self) -> Tuple[str, ...]:
        """The clocks this run times with: FUNCBENCH_CLOCKS, or the device's DEFAULT_CLOCKS."""
        return tuple(self.clock_setting.split(",")) if self.clock_setting else DEFAULT_CLOCKS[self.device_kind]

    def describe(self) -> str:
        return f"{PRESET.name}={self.preset}, {DEVICE.name}={self.device}"


def check_environment(environ: Optional[Mapping[str, str]] = None) -> None:
    """Every FUNCBENCH_* setting is valid (SettingError naming the first bad one otherwise)."""
    for setting in SETTINGS:
        get(setting, environ)


def load_asv_conf(path: Path = ROOT / "asv.conf.json") -> dict:
    """asv.conf.json without its // comment lines (asv allows them, json does not)."""
    text = "\n".join(line for line in Path(path).read_text().splitlines() if not line.strip().startswith("//"))
    return json.loads(text)
