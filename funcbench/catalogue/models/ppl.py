"""Probabilistic-programming models: tiny, so they measure the API's own overhead."""
from __future__ import annotations

import torch
from torch import distributions as dist

from funcbench.catalogue.models.common import GetterReturnType, seeded_getter

N_OBSERVATIONS, N_FEATURES = 10, 10

# validate_args=False everywhere: support checks are data-dependent control flow,
# which torch.func's vmap (jacrev, hessian) cannot trace.


@seeded_getter
def get_ppl_simple_reg(device: torch.device, preset: str) -> GetterReturnType:
    """Bayesian logistic regression with a Normal(0, 1) prior on beta."""
    X = torch.rand(N_OBSERVATIONS, N_FEATURES + 1).to(device)
    Y = torch.rand(N_OBSERVATIONS, 1).to(device)
    zero, one = torch.zeros((), device=device), torch.ones((), device=device)
    beta_prior = dist.Normal(zero, one, validate_args=False)
    beta = dist.Normal(0.0, 1.0).sample((N_FEATURES + 1, 1)).to(device).requires_grad_(True)

    def forward(beta_value):
        logits = X.mm(beta_value)
        likelihood = dist.Bernoulli(logits=logits, validate_args=False).log_prob(Y).sum()
        return likelihood + beta_prior.log_prob(beta_value).sum()

    return forward, (beta,)


@seeded_getter
def get_ppl_robust_reg(device: torch.device, preset: str) -> GetterReturnType:
    """Student-t robust regression over (nu, unconstrained sigma, beta)."""
    X = torch.rand(N_OBSERVATIONS, N_FEATURES + 1).to(device)
    Y = torch.rand(N_OBSERVATIONS, 1).to(device)
    nu_prior = dist.Gamma(torch.rand(1, 1), torch.rand(1, 1))
    sigma_prior = dist.Exponential(torch.rand(N_OBSERVATIONS, 1))
    beta_prior = dist.Normal(torch.rand(N_FEATURES + 1, 1), torch.rand(N_FEATURES + 1, 1))
    nu = nu_prior.sample()
    sigma_unconstrained = sigma_prior.sample().log()
    beta = beta_prior.sample()
    params = tuple(t.to(device).requires_grad_(True) for t in (nu, sigma_unconstrained, beta))

    # Priors rebuilt on the device, without validation (see module comment).
    nu_prior = dist.Gamma(nu_prior.concentration.to(device), nu_prior.rate.to(device), validate_args=False)
    sigma_prior = dist.Exponential(sigma_prior.rate.to(device), validate_args=False)
    beta_prior = dist.Normal(beta_prior.loc.to(device), beta_prior.scale.to(device), validate_args=False)

    def forward(nu_value, sigma_unconstrained_value, beta_value):
        sigma_value = sigma_unconstrained_value.exp()
        mu = X.mm(beta_value)

        def likelihood():
            # Re-evaluated for each score, as the original model did: it is part of the work.
            return dist.StudentT(nu_value, mu, sigma_value, validate_args=False).log_prob(Y).sum()

        nu_score = likelihood() + nu_prior.log_prob(nu_value)
        sigma_score = likelihood() + sigma_prior.log_prob(sigma_value) + sigma_unconstrained_value
        beta_score = likelihood() + beta_prior.log_prob(beta_value)
        return nu_score.sum() + sigma_score.sum() + beta_score.sum()

    return forward, params
