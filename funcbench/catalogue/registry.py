"""The single truth of which model runs which task in which API, which cells a run measures,
and why a cell cannot run here.

Adding a model is one getter plus one entry in MODELS. The CLI, the asv suite, the instruction
counts, the audit and the tests read this module; none keeps a list of its own. Two functions
answer for all of them: ``cells`` (which cells, in the one order: model, API, task) and
``why_not`` (why this cell is not measured here: unsupported, not in the run's task set or
preset/device, a package, a compiler or valgrind missing).
"""
from __future__ import annotations

import dataclasses
import functools
import importlib
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

from funcbench.catalogue import metrics, tools
from funcbench.catalogue.config import (CLOCKS, INSTRUCTIONS, PRESET, RUN_SLOW_TASKS, TIERS, RunSettings, UnknownName, choose)
from funcbench.catalogue.tasks import APIS, EAGER_APIS, FUNC_UNSUPPORTED, TASKS, VECTOR_PRODUCT_TASKS

NO_DOUBLE_BACKWARD = "no double backward (cuDNN-style RNN): only vjp"
# nn.LSTM on packed sequences fails under torch.func (torch 2.14, CPU).
DEEPSPEECH_FUNC = "nn.LSTM on packed sequences fails under torch.func: Cannot access data pointer of Tensor that doesn't have storage"


class Unsupported(NotImplementedError):
    """This (model, task, API, device) cannot run here; the message says why.

    A NotImplementedError, so asv shows the benchmark as n/a instead of failing."""


class Cell(NamedTuple):
    """One (model, task, API): what a report row, an asv parameter set and a result are about.
    Written ``model:task:api`` on command lines and in FUNCBENCH_INJECT_SLOWDOWN."""
    model: str
    task: str
    api: str

    def __str__(self) -> str:
        return f"{self.model}:{self.task}:{self.api}"

    @classmethod
    def parse(cls, text: str, check: bool = True) -> "Cell":
        """The cell written ``model:task:api``; UnknownName if it is not three names, or (with
        ``check``) names a model, task or API that does not exist. Results of another version
        of the suite may name cells this one lacks: read those with ``check=False``."""
        parts = str(text).split(":")
        if len(parts) != 3:
            raise UnknownName(f"{text!r} is not model:task:api")
        model, task, api = parts
        if check:
            model_spec(model), check_task(task), check_api(api)
        return cls(model, task, api)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    getter: str  # "module:function", imported on first use so a missing package hides one model
    default_tasks: Tuple[str, ...]
    # Cost tier (config.TIERS): how heavy one op is (small preset, 2-core CPU: light <= 15 ms,
    # medium <= 0.6 s). The asv suite takes sample counts and timeouts from it; it is not part
    # of any benchmark's name, so moving a model to another tier keeps its history.
    tier: str
    unsupported: Dict[str, str] = dataclasses.field(default_factory=dict)  # task -> why, every API
    # task -> why, torch.func (and so torch.compile, which compiles the torch.func implementation)
    func_unsupported: Dict[str, str] = dataclasses.field(default_factory=dict)
    compile_unsupported: Dict[str, str] = dataclasses.field(default_factory=dict)  # task -> why, torch.compile
    # The compiled tasks the suite runs by default (the rest with --run-slow-tasks): compiling
    # costs seconds per cell, so the default set is chosen from measurements (docs/compile.md).
    compile_default_tasks: Tuple[str, ...] = ()
    requires: Tuple[str, ...] = ()  # importable packages beyond torch
    summary: str = ""  # what the model is, in a few words (funcbench list, the README's model table)
    small: str = "same as full"  # what the small preset changes (inputs only; the architecture never)

    def __post_init__(self):
        if self.tier not in TIERS:  # a typo must not silently land a model in some tier
            raise ValueError(f"tier {self.tier!r} of {self.getter}: choose from {', '.join(TIERS)}")

    def supported_tasks(self, api: str) -> Tuple[str, ...]:
        return tuple(t for t in TASKS if unsupported_reason_for(self, t, api) is None)


def unsupported_reason_for(spec: ModelSpec, task: str, api: str) -> Optional[str]:
    if task in spec.unsupported:
        return spec.unsupported[task]
    if api in ("func", "compile"):
        why = spec.func_unsupported.get(task) or FUNC_UNSUPPORTED.get(task)
        if why:
            return why
    if api == "compile":
        return spec.compile_unsupported.get(task)
    return None


# torch.compile (fullgraph, torch 2.14.1, CPU), found by compiling every default cell:
TRANSFORMER_COMPILE = ("graph break: nn.TransformerEncoder calls Tensor.item() on a mask check "
                       "(dynamo: 'Could not guard on data-dependent expression Eq(u0, 1)')")
DETR_COMPILE = ("graph break: the Hungarian matcher reads its costs under torch._C._DisableFuncTorch, whose "
                "constructor dynamo cannot trace ('Unsupported method call')")
# Batch norm on batch statistics of 1-2 images amplifies float32 reordering: resnet18 vjp compiled
# vs eager torch.func differs by up to 0.07 on values up to 5.6 (9,074 of 11.7 M elements beyond
# the original's atol 5e-3), jvp by 0.53 on 102. Not timed: its result fails the check.
BATCH_NORM_COMPILE = ("compiled result differs from eager torch.func beyond the original tolerances "
                      "(batch norm on batch statistics; resnet18 vjp: max abs diff 0.07 on values up to 5.6)")


def _compile_unsupported(reason: str) -> Dict[str, str]:
    return {t: reason for t in TASKS}


# jacobian / jacrev of a scalar loss are reverse mode only; everything else needs a second derivative or forward AD.
_NO_HESSIANS = {t: NO_DOUBLE_BACKWARD for t in TASKS if t not in ("vjp", "jacobian", "jacrev")}

MODELS: Dict[str, ModelSpec] = {
    "wav2letter": ModelSpec("funcbench.catalogue.models.audio:get_wav2letter", VECTOR_PRODUCT_TASKS, "medium",
                            requires=("torchaudio",), summary="`torchaudio.models.Wav2Letter(28)`, NLL loss",
                            small="batch 2 (full: 10)"),
    "deepspeech": ModelSpec("funcbench.catalogue.models.deepspeech:get_deepspeech", ("vjp",), "heavy", unsupported=_NO_HESSIANS,
                            func_unsupported={t: DEEPSPEECH_FUNC for t in TASKS},
                            summary="DeepSpeech 2, 5 × bidirectional LSTM 1024, CTC loss",
                            small="batch 2, 100 frames (full: 10, 500)"),
    "transformer": ModelSpec("funcbench.catalogue.models.text:get_transformer", VECTOR_PRODUCT_TASKS, "medium",
                             compile_unsupported=_compile_unsupported(TRANSFORMER_COMPILE),
                             summary="word-language-model Transformer, 2 layers, 720 wide",
                             small="16 steps × batch 16 (full: 64 × 128)"),
    "multiheadattn": ModelSpec("funcbench.catalogue.models.text:get_multiheadattn", VECTOR_PRODUCT_TASKS, "light",
                               compile_default_tasks=("vhp",),
                               summary="torchtext-style attention container, 400 weights"),
    "ppl_simple_reg": ModelSpec("funcbench.catalogue.models.ppl:get_ppl_simple_reg", TASKS, "light",
                                compile_default_tasks=("vjp",), summary="Bayesian logistic regression"),
    "ppl_robust_reg": ModelSpec("funcbench.catalogue.models.ppl:get_ppl_robust_reg", TASKS, "light",
                                compile_default_tasks=("hessian",), summary="Student-t robust regression"),
    "resnet18": ModelSpec("funcbench.catalogue.models.vision:get_resnet18", VECTOR_PRODUCT_TASKS, "medium",
                          compile_unsupported=_compile_unsupported(BATCH_NORM_COMPILE), requires=("torchvision",),
                          summary="torchvision `resnet18`, random init", small="batch 2, 64 px (full: 32, 224)"),
    "fcn_resnet": ModelSpec("funcbench.catalogue.models.vision:get_fcn_resnet", VECTOR_PRODUCT_TASKS, "heavy",
                            compile_unsupported=_compile_unsupported(BATCH_NORM_COMPILE), requires=("torchvision",),
                            summary="torchvision `fcn_resnet50`, random init", small="batch 1, 64 px (full: 8, 480)"),
    "detr": ModelSpec("funcbench.catalogue.models.detr:get_detr", VECTOR_PRODUCT_TASKS, "heavy",
                      compile_unsupported=_compile_unsupported(DETR_COMPILE), requires=("torchvision", "scipy"),
                      summary="DETR-R50, Hungarian matcher (scipy), set loss",
                      small="160 × 240 images (full: 800 × 1200)"),
}


def model_spec(model: str) -> ModelSpec:
    return MODELS[choose("model", model, tuple(MODELS))]


def check_task(task: str) -> str:
    return choose("task", task, TASKS)


def check_api(api: str) -> str:
    return choose("api", api, APIS)


@functools.lru_cache(maxsize=None)
def unavailable_reason(model: str) -> Optional[str]:
    """Why this model cannot be built in this environment (a package fails to import), or None."""
    for package in model_spec(model).requires:
        try:
            importlib.import_module(package)
        except Exception as error:  # any import failure (OSError from a broken .so included)
            return f"{package} does not import: {type(error).__name__}: {str(error).splitlines()[0]}"
    return None


def unsupported_reason(model: str, task: str, api: str) -> Optional[str]:
    return unsupported_reason_for(model_spec(model), check_task(task), check_api(api))


def selected_tasks(model: str, api: str, run_slow_tasks: bool = False) -> Tuple[str, ...]:
    """The tasks a run does: the model's defaults, or every supported task with slow tasks on."""
    spec = model_spec(model)
    supported = spec.supported_tasks(api)
    if run_slow_tasks:
        return supported
    defaults = spec.compile_default_tasks if api == "compile" else spec.default_tasks
    return tuple(t for t in defaults if t in supported)


def cells(apis: Sequence[str] = APIS, run_slow_tasks: bool = False,
          models: Optional[Sequence[str]] = None) -> List[Cell]:
    """The cells a run measures (its task set: the defaults, or every supported task), in the
    one order every list of cells here has: model (MODELS), API (APIS), task (the model's
    defaults in their order, or TASKS' order with every supported task). asv's cell params, the
    instruction counts and the audit take this order; tables sort their rows with ``row_order``."""
    return [Cell(m, t, a) for m in (models or MODELS) for a in apis for t in selected_tasks(m, a, run_slow_tasks)]


def select(names: Sequence[str], run_slow_tasks: bool = False) -> List[Cell]:
    """The cells ``names`` pick, in ``cells``' order: a tier or a model picks its eager cells of
    the task set; ``model:task:api`` picks that one cell, whatever its API or task (a compiled
    cell is picked only so: compiling under valgrind takes minutes). UnknownName for a name
    that is none of these."""
    eager = cells(EAGER_APIS, run_slow_tasks)
    picked = set()
    for name in names:
        if name in TIERS:
            picked.update(c for c in eager if MODELS[c.model].tier == name)
        elif name in MODELS:
            picked.update(c for c in eager if c.model == name)
        elif ":" in name:
            picked.add(Cell.parse(name))
        else:
            raise UnknownName(f"{INSTRUCTIONS.name}: {name!r} is no tier ({', '.join(TIERS)}), model or "
                              f"model:task:api cell")
    ordered = list(dict.fromkeys(cells(APIS, run_slow_tasks) + cells(APIS, run_slow_tasks=True)))
    return [c for c in ordered if c in picked] + sorted(picked - set(ordered))


def row_order(cell: Cell):
    """A table's rows: model, task, API in the registry's order (the original report's); names
    this suite does not know (results of another version) last, by name."""
    model, task, api = cell
    rank = lambda seq, v: seq.index(v) if v in seq else len(seq)  # noqa: E731
    return (rank(list(MODELS), model), str(model), rank(TASKS, task), str(task), rank(APIS, api), str(api))


GPU_NOT_CPU = ("GPU work is not CPU time: on a CUDA device the wall clock, synchronized, times the op "
               "(time_op, time_compiled_op)")


def why_not(cell: Cell, preset: str = PRESET.default, device: str = "cpu", metric: str = "time",
            run: Optional[RunSettings] = None, here: bool = True) -> Optional[str]:
    """Why ``cell`` at ``preset`` on ``device`` is not measured here, or None: the one answer
    the asv suite (n/a), the CLI (skipped), the counts and the audit give. With ``run`` (an asv
    run's settings) also what that run does not measure: another preset or device, a task
    outside its task set, a cell its instruction selection leaves out. ``metric`` (one of
    funcbench.catalogue.metrics) adds what it needs: its clock among the run's, its device kinds,
    api=compile for compile seconds, valgrind and the run's selection for counts. ``here`` False: only what the cell, the metric and the run's
    settings say, nothing of this machine (its packages, compiler, valgrind): the same answer on
    every machine, as a plan shared by shards on several machines needs."""
    model, task, api = cell
    if run is not None:
        if (preset, device.split(":")[0]) != (run.preset, run.device_kind):
            return f"this run measures {run.describe()}"
        if task not in selected_tasks(model, api, run.run_slow_tasks):
            why = unsupported_reason(model, task, api)
            if why:
                return f"{model} {task} ({api}) is unsupported: {why}"
            return f"{model} {task} ({api}) is not a default task ({RUN_SLOW_TASKS.name}=1 runs it)"
    else:
        why = unsupported_reason(model, task, api)
        if why:
            return f"{model} {task} ({api}) is unsupported: {why}"
    clock = metrics.METRICS[metric].clock
    if clock == "cpu" and device.startswith("cuda"):
        return GPU_NOT_CPU
    if run is not None and clock and clock not in run.clocks:
        return (f"this run times with {CLOCKS.name}={','.join(run.clocks)}, not the {clock} clock "
                f"({CLOCKS.name}=wall,cpu times with both)")
    if metric == "compile_seconds" and api != "compile":
        return "compile time is measured for api=compile only"
    if metric == "instructions" and not device.startswith("cpu"):
        return tools.valgrind_unavailable_reason(device)  # a CPU metric, on any machine
    if run is not None and metric == "instructions" and cell not in select(run.instructions, run.run_slow_tasks):
        named = " (compiled cells only when named model:task:compile)" if api == "compile" else ""
        return (f"{model} {task} ({api}) is not counted: {INSTRUCTIONS.name}={','.join(run.instructions) or 'none'} "
                f"(tiers, models or cells to count){named}")
    if not here:
        return None
    if api == "compile":
        why = tools.compile_unavailable_reason(device)
        if why:
            return f"{model} {task} ({api}) cannot run here: {why}"
    why = unavailable_reason(model)
    if why:
        return f"{model} is unavailable here: {why}"
    if metric == "instructions":
        return tools.valgrind_unavailable_reason(device)
    return None


def getter(model: str) -> Callable:
    module, function = model_spec(model).getter.split(":")
    return getattr(importlib.import_module(module), function)


def import_getters() -> None:
    """Import the getter module of every model that can be built here (torchvision, torchaudio
    and scipy with them), so that processes forked afterwards do not each import them again."""
    for model in MODELS:
        if unavailable_reason(model) is None:
            getter(model)
