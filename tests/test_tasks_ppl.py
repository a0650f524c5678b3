"""Every task on the two ppl models against independent computations.

The ppl models are tiny, so the full hessian is cheap and every product can be checked
against it; ppl_simple_reg also has a closed form (logistic regression, Normal prior)."""
import pytest
import torch

from funcbench.measurement import cases
from funcbench.catalogue import registry
from funcbench.catalogue.registry import Cell
from funcbench.catalogue.tasks import EAGER_APIS as APIS, IMPLEMENTATIONS, TASKS, check_result  # compile: test_compile.py

PPL = ("ppl_simple_reg", "ppl_robust_reg")
TOL = dict(rtol=1e-4, atol=1e-4)


def cell(model, task, api):
    return cases.build_case(Cell(model, task, api)).call_checked()


def flat_hessian(h, params):
    sizes = [p.numel() for p in params]
    return torch.cat([torch.cat([h[i][j].reshape(sizes[i], sizes[j]) for j in range(len(params))], 1)
                      for i in range(len(params))], 0)


def flat(tensors):
    return torch.cat([t.reshape(-1) for t in tensors])


def supported(model):
    return [(t, a) for a in APIS for t in registry.selected_tasks(model, a, run_slow_tasks=True)]


@pytest.fixture(scope="module", params=PPL)
def model(request):
    return request.param


@pytest.fixture(scope="module")
def reference(model):
    forward, params = cases.build(model, "cpu", "small", 0)
    grad = torch.autograd.grad(forward(*params), params)
    return forward, params, grad


def test_ppl_models_run_every_task_in_both_apis(model):
    assert len(supported(model)) == 2 * len(TASKS) - 1  # all but torch.func's jacobian
    assert set(registry.selected_tasks(model, "compile", run_slow_tasks=True)) == set(TASKS) - {"jacobian"}


# torch.func has no non-vectorized jacobian (test_registry checks it says so).
@pytest.mark.parametrize("task, api", [(t, a) for t in ("jacobian", "jacrev", "jacfwd") for a in APIS
                                       if (t, a) != ("jacobian", "func")])
def test_jacobians_equal_autograd_grad(model, reference, task, api):
    _, _, grad = reference
    torch.testing.assert_close(flat(cell(model, task, api)), flat(grad), **TOL)


@pytest.mark.parametrize("task", ["hessian", "hessian_revrev", "hessian_fwdrev"])
@pytest.mark.parametrize("api", APIS)
def test_hessians_are_symmetric_and_equal_the_non_vectorized_one(model, reference, task, api):
    _, params, _ = reference
    h = flat_hessian(cell(model, task, api), params)
    torch.testing.assert_close(h, h.T, **TOL)
    torch.testing.assert_close(h, flat_hessian(cell(model, "hessian", "autograd"), params), **TOL)


@pytest.mark.parametrize("api", APIS)
def test_hvp_is_h_times_v_and_vhp_is_v_times_h(model, reference, api):
    _, params, _ = reference
    h = flat_hessian(cell(model, "hessian", "autograd"), params)
    for task, expected in (("hvp", lambda v: h @ v), ("vhp", lambda v: v @ h)):
        case = cases.build_case(Cell(model, task, api))
        torch.testing.assert_close(flat(case.call_checked()), expected(flat(case.v)), **TOL)


@pytest.mark.parametrize("api", APIS)
def test_vjp_is_v_times_grad_and_jvp_is_grad_dot_v(model, reference, api):
    _, _, grad = reference
    vjp = cases.build_case(Cell(model, "vjp", api))
    torch.testing.assert_close(flat(vjp.call_checked()), vjp.v * flat(grad), **TOL)
    jvp = cases.build_case(Cell(model, "jvp", api))
    torch.testing.assert_close(jvp.call_checked(), flat(grad) @ flat(jvp.v), **TOL)


def test_simple_reg_matches_its_closed_form():
    # The getter draws X then Y first under the seed (see get_ppl_simple_reg).
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        X, Y = torch.rand(10, 11), torch.rand(10, 1)
    _, (beta,) = cases.build("ppl_simple_reg", "cpu", "small", 0)
    beta = beta.detach()
    p = torch.sigmoid(X @ beta)
    # log p(Y | X beta) + log N(beta; 0, 1): gradient X^T (Y - p) - beta,
    # hessian -X^T diag(p (1 - p)) X - I.
    grad = X.T @ (Y - p) - beta
    hessian = -(X.T * (p * (1 - p)).T) @ X - torch.eye(11)
    for api in APIS:
        torch.testing.assert_close(cell("ppl_simple_reg", "jacrev", api)[0], grad, **TOL)
        torch.testing.assert_close(cell("ppl_simple_reg", "hessian", api)[0][0].reshape(11, 11), hessian, **TOL)


def test_the_shape_guard_rejects_a_wrong_or_non_finite_result():
    _, params = cases.build("ppl_robust_reg", "cpu", "small", 0)
    good = tuple(torch.zeros_like(p) for p in params)
    check_result("vjp", good, params)
    with pytest.raises(AssertionError, match="shapes"):
        check_result("vjp", good[:2], params)
    with pytest.raises(AssertionError, match="non-finite"):
        check_result("vjp", (good[0] / 0,) + good[1:], params)
    with pytest.raises(AssertionError, match="shapes"):
        check_result("hessian", good, params)


def test_every_task_has_both_implementations_or_a_reason():
    assert set(IMPLEMENTATIONS["autograd"]) == set(TASKS)
    for task in TASKS:
        assert task in IMPLEMENTATIONS["func"] or registry.unsupported_reason("ppl_simple_reg", task, "func")
