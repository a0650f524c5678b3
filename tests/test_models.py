"""Every model honours the getter contract (SPEC.md) at the small preset."""
import pytest
import torch

from funcbench.measurement import cases
from funcbench.catalogue import registry
from funcbench.catalogue.models.common import PRESETS


@pytest.fixture(scope="module", params=list(registry.MODELS))
def built(request):
    model = request.param
    forward, params = cases.build(model, "cpu", "small", 0)
    return model, forward, params


def test_loss_is_a_finite_scalar_identical_on_two_calls(built):
    model, forward, params = built
    first, second = forward(*params), forward(*params)
    assert first.shape == () and torch.isfinite(first), model
    assert torch.equal(first, second), f"{model}: forward has a side effect"


def test_every_param_gets_a_gradient(built):
    model, forward, params = built
    assert params and all(p.requires_grad and p.is_leaf and p.device.type == "cpu" for p in params)
    grads = torch.autograd.grad(forward(*params), params, allow_unused=True)
    missing = [i for i, g in enumerate(grads) if g is None]
    assert not missing, f"{model}: params {missing} get no gradient"
    assert all(torch.isfinite(g).all() for g in grads)


def test_same_seed_same_work_other_seed_other_work():
    getter = registry.getter("multiheadattn")
    (f0, p0), (f0b, p0b), (f1, p1) = getter("cpu", "small", 0), getter("cpu", "small", 0), getter("cpu", "small", 1)
    assert all(torch.equal(a, b) for a, b in zip(p0, p0b))
    assert torch.equal(f0(*p0), f0b(*p0b))
    assert not torch.equal(f0(*p0), f1(*p1))


def test_getter_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    registry.getter("ppl_robust_reg")("cpu", "small", 0)
    assert torch.equal(torch.rand(3), expected)


def test_wav2letter_is_torchaudios_model_with_its_weight_shapes():
    import torchaudio.models

    reference = torchaudio.models.Wav2Letter(num_classes=28)
    _, params = cases.build("wav2letter", "cpu", "small", 0)
    assert [tuple(p.shape) for p in params] == [tuple(p.shape) for p in reference.parameters()]
    assert sum(p.numel() for p in params) == 26_187_278  # SPEC: ~26.2 M weights


@pytest.mark.parametrize("model, weights", [("transformer", 10_134_546), ("deepspeech", 86_598_944),
                                            ("multiheadattn", 400)])
def test_weight_counts_match_the_original(model, weights):
    # Presets scale inputs, never the architecture: small has the original weight count.
    _, params = cases.build(model, "cpu", "small", 0)
    assert sum(p.numel() for p in params) == weights


def test_full_preset_uses_the_original_input_sizes():
    # Only the cheap models are built at full size here; sizes of the heavy ones are constants.
    from funcbench.catalogue.models import audio, text, vision, deepspeech, detr

    assert audio.WAV2LETTER_SIZES["full"] == (10, 700)
    assert text.TRANSFORMER_SIZES["full"] == (64, 128)
    assert vision.RESNET18_SIZES["full"] == (32, 224) and vision.FCN_SIZES["full"] == (8, 480)
    assert deepspeech.PRESET_SIZES["full"]["batch"] == 10 and deepspeech.PRESET_SIZES["full"]["frames"] == 500
    assert (detr.PRESET_SIZES["full"]["height"], detr.PRESET_SIZES["full"]["width"]) == (800, 1200)
    forward, params = cases.build("multiheadattn", "cpu", "full", 0)
    assert torch.isfinite(forward(*params))
    assert set(PRESETS) == {"small", "full"}
