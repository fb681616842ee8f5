"""Diffusion Posterior Sampling (Chung, Kim, McCann, Klasky & Ye, ICLR 2023).

Given a measurement y = A(x_0) + n and an unconditional denoiser, each reverse step is

    x0_hat(x_t) = (x_t - sqrt(1 - abar_t) eps(x_t)) / sqrt(abar_t)         (Tweedie; DPS eq. 10)
    x'_{t'}     = ordinary sampler step from x_t (DDPM or DDIM)            (DPS alg. 1, lines 4-7)
    x_{t'}      = x'_{t'} - zeta_t grad_{x_t} ||y - A(x0_hat(x_t))||^2     (DPS alg. 1, line 7)
    zeta_t      = zeta / ||y - A(x0_hat(x_t))||                           (DPS appendix C.2)

The gradient flows THROUGH the denoiser: `step` needs `x_t` with `requires_grad=True` and
`model_output = denoiser(x_t, t)` computed with autograd enabled, so d x0_hat / d x_t includes
the network's Jacobian (the public code this replaces detached it, treated the score as noise
and applied about 1e-6 of the step). The measurement model A (the neural likelihood) is a
separate object passed in; it maps x0 (batch, ...) to predictions shaped like y.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from neurovox.diffusion.ddim import DDIMSampler, DDPMSampler, StepOutput
from neurovox.errors import DataError
from neurovox.utils.check import check_range


@dataclass
class PosteriorStepOutput(StepOutput):
    """StepOutput plus the per-sample residual norm ||y - A(x0_hat)||, shape (batch,)."""

    residual_norm: torch.Tensor | None = None


class PosteriorSampler:
    """DPS on top of a base sampler (DDPM, as in the paper, or DDIM).

    Parameters
    ----------
    base : DDIMSampler or DDPMSampler
        The unconditional sampler whose step is corrected.
    measurement : callable
        A: x0 (batch, ...) -> predicted measurement, same shape as the observation. Differentiable.
    guidance_scale : float
        zeta, the residual-normalised step size (DPS uses 0.1 - 1 for image tasks).
    x0_range : (float, float), optional
        Clamp x0_hat to this range before the measurement (as the reference DPS implementation
        does with its clipped x0 estimate): at large t, x0_hat = x_t / sqrt(abar_t) is far outside
        the data range and the unclamped gradient, amplified by 1 / sqrt(abar_t), swamps the step.
    signal_scaled : bool
        Multiply zeta by sqrt(abar_t) so that the correction is a step of size zeta in x0 space
        (d x0_hat / d x_t ~ 1 / sqrt(abar_t)); False is the paper's rule.
    """

    def __init__(self, base: DDIMSampler | DDPMSampler, measurement: Callable[[torch.Tensor], torch.Tensor], *,
                 guidance_scale: float = 1.0, x0_range: tuple[float, float] | None = None,
                 signal_scaled: bool = False) -> None:
        check_range("guidance_scale", guidance_scale, 0.0, None)
        self.x0_range = x0_range
        self.signal_scaled = bool(signal_scaled)
        self.base = base
        self.schedule = base.schedule
        self.measurement = measurement
        self.guidance_scale = float(guidance_scale)
        self.observation: torch.Tensor | None = None

    @property
    def timesteps(self) -> torch.Tensor:
        return self.base.timesteps

    def set_timesteps(self, n_steps: int, *, t_start: int | None = None) -> torch.Tensor:
        return self.base.set_timesteps(n_steps, t_start=t_start)

    def set_observation(self, y: torch.Tensor) -> None:
        """The measurement y, shape (batch, ...) matching `measurement(x0)`."""
        self.observation = y

    def step(self, model_output: torch.Tensor, t: int | torch.Tensor, x_t: torch.Tensor, *,
             generator: torch.Generator | None = None) -> PosteriorStepOutput:
        if self.observation is None:
            raise DataError("PosteriorSampler.step needs an observation; call set_observation(y) first.")
        if not x_t.requires_grad or model_output.grad_fn is None:
            raise DataError(
                "PosteriorSampler.step needs the gradient through the denoiser: pass x_t with "
                "requires_grad=True and model_output = denoiser(x_t, t) computed under torch.enable_grad()."
            )
        t = int(t)
        # 1. Tweedie's clean estimate x0_hat(x_t), differentiable through the denoiser (eq. 10)
        pred_x0, _ = self.schedule.to_x0_eps(model_output, t, x_t)
        # 2. residual r = y - A(x0_hat) and its norm per sample
        x0_m = pred_x0 if self.x0_range is None else pred_x0.clamp(*self.x0_range)
        residual = self.observation - self.measurement(x0_m)
        sq_norm = residual.flatten(1).square().sum(dim=1)                      # (batch,)
        norm = sq_norm.sqrt()
        # 3. grad_{x_t} ||r||^2 for every sample at once (samples are independent)
        (grad,) = torch.autograd.grad(sq_norm.sum(), x_t)
        # 4. the ordinary sampler step x'_{t'} (no gradient)
        base = self.base.step(model_output.detach(), t, x_t.detach(), generator=generator)
        # 5. x_{t'} = x'_{t'} - zeta / ||r|| * grad ||r||^2 (alg. 1 line 7 with appendix C.2's zeta_t)
        zeta = self.guidance_scale / norm.clamp_min(1e-8)
        if self.signal_scaled:
            zeta = zeta * self.schedule.abar(t, norm).sqrt()
        prev = base.prev_sample - zeta.reshape(-1, *([1] * (x_t.ndim - 1))) * grad
        return PosteriorStepOutput(prev_sample=prev.detach(), pred_x0=pred_x0.detach(), residual_norm=norm.detach())


def posterior_sample(denoiser: torch.nn.Module, sampler: PosteriorSampler, observation: torch.Tensor,
                     shape: tuple[int, ...], *, n_steps: int = 100, x_init: torch.Tensor | None = None,
                     t_start: int | None = None, generator: torch.Generator | None = None,
                     progress: bool = False) -> torch.Tensor:
    """Draw x_0 ~ p(x_0 | y) approximately with DPS.

    Parameters
    ----------
    denoiser : nn.Module
        (x_t, t) -> model output; its parameters are not updated (gradients only w.r.t. x_t).
    sampler : PosteriorSampler
    observation : Tensor, shape (batch, ...)
        y, as `sampler.measurement` predicts it.
    shape : tuple
        Shape of x_0, (batch, ...).
    n_steps : int
        Number of reverse steps.
    x_init : Tensor, optional
        Warm start (e.g. a direct decoder's output, in the prior's normalised space): it is noised
        to `t_start` with q(x_t | x_0) and only the steps from `t_start` down are run.
    t_start : int, optional
        Starting timestep for the warm start (default: T-1, i.e. a cold start).
    generator : torch.Generator, optional

    Returns
    -------
    x0 : Tensor, shape `shape`
    """
    device = observation.device
    sampler.set_observation(observation)
    sampler.set_timesteps(n_steps, t_start=t_start)
    first_t = int(sampler.timesteps[0])
    noise = torch.randn(shape, generator=generator, device=device)
    if x_init is not None:
        if tuple(x_init.shape) != tuple(shape):
            raise DataError(f"x_init must have shape {tuple(shape)}, got {tuple(x_init.shape)}.")
        x = sampler.schedule.add_noise(x_init.to(device), noise, first_t)
    else:
        x = noise
    flags = [p.requires_grad for p in denoiser.parameters()]
    for p in denoiser.parameters():
        p.requires_grad_(False)
    try:
        for t in tqdm(sampler.timesteps, desc="DPS", disable=not progress, leave=False):
            x = x.detach().requires_grad_(True)
            with torch.enable_grad():
                tt = torch.full((shape[0],), int(t), device=device, dtype=torch.long)
                out = sampler.step(denoiser(x, tt), t, x, generator=generator)
            x = out.prev_sample
    finally:
        for p, f in zip(denoiser.parameters(), flags):
            p.requires_grad_(f)
    return x.detach()
