"""The registry is the one truth of models x tasks x APIs, and says why a cell cannot run."""
import dataclasses

import pytest
import torch

from funcbench.measurement import cases
from funcbench.catalogue import registry
from funcbench.catalogue.registry import Cell
from funcbench.catalogue.tasks import APIS, TASKS, VECTOR_PRODUCT_TASKS


def test_default_tasks_are_the_originals():
    for model in ("resnet18", "fcn_resnet", "detr", "wav2letter", "transformer", "multiheadattn"):
        assert set(registry.selected_tasks(model, "autograd")) == set(VECTOR_PRODUCT_TASKS)
    for model in ("ppl_simple_reg", "ppl_robust_reg"):
        assert set(registry.selected_tasks(model, "autograd")) == set(TASKS)
    assert registry.selected_tasks("deepspeech", "autograd") == ("vjp",)


@pytest.mark.parametrize("task", ["jvp", "hvp", "vhp", "hessian"])
def test_deepspeech_has_no_double_backward(task):
    with pytest.raises(registry.Unsupported, match="no double backward"):
        cases.build_case(Cell("deepspeech", task, "autograd"))


def test_func_has_no_non_vectorized_jacobian():
    with pytest.raises(registry.Unsupported, match="no non-vectorized jacobian"):
        cases.build_case(Cell("ppl_simple_reg", "jacobian", "func"))
    assert "jacobian" not in registry.selected_tasks("ppl_simple_reg", "func", run_slow_tasks=True)


def test_unsupported_is_a_not_implemented_error_so_asv_skips_it():
    assert issubclass(registry.Unsupported, NotImplementedError)


@pytest.mark.parametrize("call, words", [
    (lambda: cases.build_case(Cell("nope", "vjp", "autograd")), "unknown model 'nope'; choose from: wav2letter"),
    (lambda: cases.build_case(Cell("ppl_simple_reg", "grad", "autograd")), "unknown task 'grad'; choose from: vjp"),
    (lambda: cases.build_case(Cell("ppl_simple_reg", "vjp", "jax")), "unknown api 'jax'; choose from: autograd, func, compile"),
    (lambda: cases.build("ppl_simple_reg", "cpu", "huge"), "unknown preset 'huge'; choose from: small, full"),
    (lambda: cases.build_case(Cell("ppl_simple_reg", "vjp", "autograd"), device="tpu"), "unknown device 'tpu'"),
])
def test_unknown_names_say_what_exists(call, words):
    with pytest.raises(registry.UnknownName) as error:
        call()
    assert words in str(error.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only path (a GPU machine has CUDA)")
def test_cuda_where_none_exists_is_unsupported_with_a_reason():
    with pytest.raises(registry.Unsupported, match="CUDA is not available"):
        cases.build_case(Cell("ppl_simple_reg", "vjp", "autograd"), device="cuda")


def test_a_model_whose_package_does_not_import_is_unavailable_and_the_rest_still_runs(monkeypatch):
    broken = dataclasses.replace(registry.MODELS["wav2letter"], requires=("torchaudio_that_does_not_exist",))
    monkeypatch.setitem(registry.MODELS, "wav2letter", broken)
    registry.unavailable_reason.cache_clear()
    try:
        reason = registry.unavailable_reason("wav2letter")
        assert "torchaudio_that_does_not_exist does not import: ModuleNotFoundError" in reason
        with pytest.raises(registry.Unsupported, match="wav2letter is unavailable here"):
            cases.build("wav2letter", "cpu", "small", 12345)  # a seed not cached by other tests
        cases.build_case(Cell("ppl_simple_reg", "vjp", "autograd")).call_checked()
    finally:
        registry.unavailable_reason.cache_clear()


def test_every_model_is_available_in_the_test_environment():
    # CI installs torchaudio, torchvision and scipy: an unavailable model there is a bug.
    assert {m: registry.unavailable_reason(m) for m in registry.MODELS} == {m: None for m in registry.MODELS}


def test_cases_share_one_build_per_process():
    a = cases.build_case(Cell("multiheadattn", "vjp", "autograd"))
    b = cases.build_case(Cell("multiheadattn", "vhp", "func"))
    assert a.params is b.params and a.forward is b.forward


def test_both_apis_see_the_same_v():
    a = cases.build_case(Cell("ppl_robust_reg", "hvp", "autograd"))
    b = cases.build_case(Cell("ppl_robust_reg", "hvp", "func"))
    assert all(torch.equal(x, y) for x, y in zip(a.v, b.v))
    assert all(x.shape == p.shape for x, p in zip(a.v, a.params))
    assert APIS == ("autograd", "func", "compile")


def test_every_model_has_a_tier_and_a_typo_is_refused():
    from funcbench.catalogue.config import TIERS
    assert {registry.model_spec(m).tier for m in registry.MODELS} <= set(TIERS)
    with pytest.raises(ValueError, match="tier 'fats'"):
        registry.ModelSpec("funcbench.catalogue.models.ppl:get_ppl_simple_reg", ("vjp",), "fats")


def test_a_cell_is_written_model_task_api_and_read_back_checked():
    cell = registry.Cell("ppl_simple_reg", "vjp", "func")
    assert str(cell) == "ppl_simple_reg:vjp:func" and registry.Cell.parse(str(cell)) == cell
    assert cases.build_case(cell).cell == cell
    for bad, words in (("ppl_simple_reg:vjp", "is not model:task:api"), ("alexnet:vjp:func", "unknown model"),
                       ("ppl_simple_reg:vjp:jax", "unknown api")):
        with pytest.raises(registry.UnknownName, match=words):
            registry.Cell.parse(bad)
