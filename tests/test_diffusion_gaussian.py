"""Closed-form checks of the schedule, the DDIM/DDPM samplers and DPS with the exact (analytic)
denoiser of a Gaussian prior x ~ N(mu, Sigma): E[x0 | x_t] is linear in x_t, so eps(x_t, t) is exact."""

import functools

import pytest
import torch

from neurovox.diffusion.ddim import DDIMSampler, DDPMSampler, sample_prior
from neurovox.diffusion.dps import PosteriorSampler, posterior_sample
from neurovox.diffusion.schedule import NoiseSchedule
from neurovox.errors import ConfigError, DataError

D = 4


def _prior():
    g = torch.Generator().manual_seed(0)
    L = torch.randn(D, D, generator=g, dtype=torch.float64) * 0.5
    sigma = L @ L.T + 0.5 * torch.eye(D, dtype=torch.float64)
    mu = torch.tensor([0.5, -0.5, 0.0, 0.25], dtype=torch.float64)
    return mu, sigma


class AnalyticDenoiser(torch.nn.Module):
    """Exact eps for x0 ~ N(mu, Sigma): x0_hat = mu + sqrt(abar) Sigma C^-1 (x_t - sqrt(abar) mu),
    C = abar Sigma + (1 - abar) I."""

    def __init__(self, schedule, mu, sigma):
        super().__init__()
        self.schedule, self.mu, self.sigma = schedule, mu, sigma
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, t):
        ab = self.schedule.alphas_cumprod[t[0]].double()
        cov = ab * self.sigma + (1 - ab) * torch.eye(D, dtype=torch.float64)
        xd = x.double()
        x0 = self.mu + (ab.sqrt() * (self.sigma @ torch.linalg.solve(cov, (xd - ab.sqrt() * self.mu).T))).T
        return ((xd - ab.sqrt() * x0) / (1 - ab).sqrt()).to(x.dtype)


def test_schedule_properties():
    for kind in ("linear", "cosine"):
        s = NoiseSchedule(1000, kind)
        abar = s.alphas_cumprod
        assert s.betas.dtype == torch.float32 and "alphas_cumprod" in dict(s.named_buffers())
        assert torch.all(abar[1:] < abar[:-1])                # strictly decreasing
        assert abar[0] > 0.999 and abar[-1] < 1e-3            # starts clean, ends (almost) pure noise
        assert torch.allclose(s.sqrt_abar**2 + s.sqrt_one_minus_abar**2, torch.ones(1000), atol=1e-6)
    # prediction conversions invert the forward process exactly
    g = torch.Generator().manual_seed(1)
    x0, eps = torch.randn(3, 5, generator=g), torch.randn(3, 5, generator=g)
    t = torch.tensor([0, 400, 999])
    for pred in ("epsilon", "v", "x0"):
        s = NoiseSchedule(1000, "cosine", pred)
        xt = s.add_noise(x0, eps, t)
        x0_hat, eps_hat = s.to_x0_eps(s.training_target(x0, eps, t), t, xt)
        assert torch.allclose(x0_hat, x0, atol=2e-3) and torch.allclose(eps_hat, eps, atol=2e-3)
    with pytest.raises(ConfigError, match="allowed values are 'linear', 'cosine'"):
        NoiseSchedule(1000, "cosin")


def test_timesteps_and_warm_start():
    s = NoiseSchedule(1000, "cosine")
    sampler = DDIMSampler(s)
    ts = sampler.set_timesteps(10)
    assert ts[0] == 999 and ts[-1] == 0 and len(ts) == 10
    ts = sampler.set_timesteps(5, t_start=400)
    assert ts.tolist() == [400, 300, 200, 100, 0]
    with pytest.raises(ConfigError, match="not one of the sampler's timesteps"):
        sampler.step(torch.zeros(1, 2), 17, torch.zeros(1, 2))


def test_sampler_determinism_with_generator():
    mu, sigma = _prior()
    s = NoiseSchedule(1000, "cosine")
    den = AnalyticDenoiser(s, mu, sigma)
    for sampler in (DDPMSampler(s), DDIMSampler(s, eta=0.5)):
        a = sample_prior(den, sampler, (8, D), n_steps=20, generator=torch.Generator().manual_seed(3))
        b = sample_prior(den, sampler, (8, D), n_steps=20, generator=torch.Generator().manual_seed(3))
        c = sample_prior(den, sampler, (8, D), n_steps=20, generator=torch.Generator().manual_seed(4))
        assert torch.equal(a, b) and not torch.allclose(a, c)


@pytest.mark.parametrize("kind", ["ddim", "ddpm"])
def test_sampler_reproduces_gaussian_prior(kind):
    # 4000 samples: the standard error of a mean is <= 0.025 and of a covariance entry <= 0.06.
    mu, sigma = _prior()
    s = NoiseSchedule(1000, "cosine")
    den = AnalyticDenoiser(s, mu, sigma)
    sampler = DDIMSampler(s) if kind == "ddim" else DDPMSampler(s)
    x = sample_prior(den, sampler, (4000, D), n_steps=100, generator=torch.Generator().manual_seed(0)).double()
    assert (x.mean(0) - mu).abs().max() < 0.1
    rel = torch.linalg.norm(torch.cov(x.T) - sigma) / torch.linalg.norm(sigma)
    assert rel < 0.1, rel


def _linear_gaussian_problem():
    """y = H x + n, n ~ N(0, 0.1^2 I); the exact posterior is N(m, P) with
    P = (Sigma^-1 + H^T H / s^2)^-1, m = P (Sigma^-1 mu + H^T y / s^2)."""
    mu, sigma = _prior()
    H = torch.tensor([[1.0, 0, 0, 0], [0, 1, 1, 0]], dtype=torch.float64)
    noise_sd = 0.1
    y = H @ torch.tensor([2.0, 1.5, -2.0, 1.0], dtype=torch.float64)
    P = torch.linalg.inv(torch.linalg.inv(sigma) + H.T @ H / noise_sd**2)
    m = P @ (torch.linalg.solve(sigma, mu) + H.T @ y / noise_sd**2)
    return mu, sigma, H, noise_sd, y, P, m


def _posterior_errors(x, mu, H, P, m):
    """(||mean - m|| / ||m - mu||, [var(h x) / h P h for each measured direction h = a row of H])."""
    x = x.double()
    cov = torch.cov(x.T)
    gap = torch.linalg.norm(m - mu)
    return float(torch.linalg.norm(x.mean(0) - m) / gap), [float(h @ cov @ h / (h @ P @ h)) for h in H]


def _shipped():
    """The sampler settings a "dps" run ships with (DpsConfig's defaults, read, not copied) and the
    prior's default schedule. x0 clipping is off here: it bounds the unit mel scale, not this Gaussian."""
    from neurovox.diffusion.decode import DpsConfig
    from neurovox.diffusion.train_prior import PriorTrainConfig

    prior = PriorTrainConfig()
    return DpsConfig(), NoiseSchedule(prior.n_train_steps, prior.schedule, prior.prediction)


def test_dps_paper_rule_moves_toward_the_posterior():
    """The paper's residual-normalised step (rule "residual", zeta = 0.1, 100 DDPM steps) lands near
    m and far from the prior mean; without guidance the same sampler stays on the prior."""
    mu, sigma, H, noise_sd, y, P, m = _linear_gaussian_problem()
    s = NoiseSchedule(1000, "linear")
    den = AnalyticDenoiser(s, mu, sigma)
    Hf = H.float()
    n = 2000
    sampler = PosteriorSampler(DDPMSampler(s), lambda x0: x0 @ Hf.T, guidance_scale=0.1)
    x = posterior_sample(den, sampler, y.float().expand(n, 2), (n, D), n_steps=100,
                         generator=torch.Generator().manual_seed(0)).double()
    mean = x.mean(0)
    gap = torch.linalg.norm(m - mu)                      # 1.53: prior and posterior means far apart
    assert gap > 1.0
    assert torch.linalg.norm(mean - m) < 0.25 * gap      # close to the exact posterior mean
    assert torch.linalg.norm(mean - mu) > 0.75 * gap     # far from the prior mean
    assert torch.linalg.norm(H @ mean - y) < 0.1         # the measured directions match y
    free = PosteriorSampler(DDPMSampler(s), lambda x0: x0 @ Hf.T, guidance_scale=0.0)
    x = posterior_sample(den, free, y.float().expand(n, 2), (n, D), n_steps=100,
                         generator=torch.Generator().manual_seed(0)).double()
    assert torch.linalg.norm(x.mean(0) - mu) < 0.1


@functools.lru_cache(maxsize=1)
def _dps_at_shipped_defaults(n: int = 2000):
    from neurovox.diffusion.ddim import make_sampler

    cfg, s = _shipped()
    mu, sigma, H, noise_sd, y, P, m = _linear_gaussian_problem()
    den = AnalyticDenoiser(s, mu, sigma)
    Hf = H.float()
    base = make_sampler(s, cfg.sampler, eta=cfg.eta)
    sampler = PosteriorSampler(base, lambda x0: x0 @ Hf.T, guidance_scale=cfg.guidance_scale,
                               signal_scaled=cfg.signal_scaled, rule=cfg.guidance_rule, noise_var=noise_sd**2)
    x = posterior_sample(den, sampler, y.float().expand(n, 2), (n, D), n_steps=cfg.n_steps,
                         generator=torch.Generator().manual_seed(0))
    return _posterior_errors(x, mu, H, P, m)


def test_dps_shipped_defaults_near_closed_form_posterior():
    """DPS at the shipped settings (rule "likelihood", zeta 1, DDPM, DpsConfig.n_steps). Measured
    (2000 samples): mean 0.15 of the gap from m, variance 2.5x and 0.7x the exact one in the two
    measured directions (the paper's rule at zeta 1 misses by 0.3-0.5 with 0.03x and 400x). These
    bounds pin that; the issue's stricter bar is the xfail test below."""
    err, ratios = _dps_at_shipped_defaults()
    assert err < 0.2, err
    assert all(1 / 3 < r < 3 for r in ratios), ratios


@pytest.mark.xfail(strict=True, reason="DPS's Gaussian likelihood at x0_hat with one scalar width cannot match "
                   "both measured directions: 2.5x / 0.7x variance and 0.15 of the gap at the shipped settings "
                   "(no zeta, width or step count tried met it; DAPS, the default algorithm, does)")
def test_dps_shipped_defaults_match_closed_form_posterior():
    err, ratios = _dps_at_shipped_defaults()
    assert err <= 0.1 and all(0.5 <= r <= 2 for r in ratios), (err, ratios)


def test_dps_requires_gradient_through_denoiser():
    s = NoiseSchedule(100, "linear")
    sampler = PosteriorSampler(DDIMSampler(s), lambda x0: x0, guidance_scale=1.0)
    sampler.set_timesteps(10)
    sampler.set_observation(torch.zeros(2, 3))
    x = torch.randn(2, 3)
    with pytest.raises(DataError, match="requires_grad=True"):
        sampler.step(torch.zeros(2, 3), int(sampler.timesteps[0]), x)


def test_daps_shipped_defaults_match_closed_form_posterior():
    """DAPS at the shipped settings (DpsConfig: n_steps levels x langevin_steps Langevin updates,
    langevin_step_scale; the prior's default cosine schedule), 4000 samples: the mean within 0.1 of
    the prior-to-posterior gap of the exact m, the variance along each measured direction (the rows
    of H) within 2x of the exact one. Measured: 0.07 of the gap, 1.15x and 1.2x (the settings before
    this test: 0.67 and ~65x)."""
    from neurovox.diffusion.daps import daps_sample

    cfg, s = _shipped()
    mu, sigma, H, noise_sd, y, P, m = _linear_gaussian_problem()
    den = AnalyticDenoiser(s, mu, sigma)
    Hf = H.float()
    n = 4000

    def draw(n_langevin: int) -> torch.Tensor:
        return daps_sample(den, s, lambda x0: x0 @ Hf.T, y.float().expand(n, 2), (n, D),
                           noise_var=noise_sd**2 / cfg.guidance_scale, n_steps=cfg.n_steps, n_langevin=n_langevin,
                           step_scale=cfg.langevin_step_scale, x0_range=None, generator=torch.Generator().manual_seed(0))

    err, ratios = _posterior_errors(draw(cfg.langevin_steps), mu, H, P, m)
    assert err <= 0.1, err
    assert all(0.5 <= r <= 2.0 for r in ratios), ratios
    # no Langevin steps = no likelihood: annealed prior samples, mean at the prior mean
    free = draw(0)
    assert torch.linalg.norm(free.mean(0) - mu) < 0.15
