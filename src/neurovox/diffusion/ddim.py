"""Ancestral samplers for a `NoiseSchedule`: DDIM (Song et al., ICLR 2021) and DDPM (Ho et al. 2020).

Both follow one contract (as diffusers' schedulers do):

    sampler.set_timesteps(n_steps)               # or set_timesteps(n_steps, t_start=...) for a warm start
    for t in sampler.timesteps:
        out = sampler.step(denoiser(x, t), t, x, generator=g)
        x = out.prev_sample                      # out.pred_x0 is the clean estimate at t

Symbols: abar_t -> `alphas_cumprod[t]`; x0_hat -> `pred_x0`; eps_hat -> `pred_eps`; the
previous (less noisy) timestep t' is the next entry of `timesteps` (or -1, where abar = 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from neurovox.diffusion.schedule import NoiseSchedule
from neurovox.errors import ConfigError
from neurovox.utils.check import check_range


@dataclass
class StepOutput:
    """Result of one sampler step.

    prev_sample : Tensor, same shape as x_t -- x_{t'} (t' the previous timestep)
    pred_x0 : Tensor, same shape as x_t -- the clean estimate x0_hat(x_t)
    """

    prev_sample: torch.Tensor
    pred_x0: torch.Tensor


class _StridedSampler:
    """Shared timestep bookkeeping: `n_steps` evenly spaced timesteps, descending."""

    def __init__(self, schedule: NoiseSchedule, *, clip_x0: float | None = None) -> None:
        self.schedule = schedule
        self.clip_x0 = clip_x0
        self.timesteps = torch.empty(0, dtype=torch.long)
        self._prev: dict[int, int] = {}

    def set_timesteps(self, n_steps: int, *, t_start: int | None = None) -> torch.Tensor:
        """Choose `n_steps` timesteps evenly spaced from `t_start` (default T-1) down to 0.

        A warm start (SDEdit, Meng et al. 2022) noises an initial estimate to `t_start` with
        `schedule.add_noise` and runs only these steps.
        """
        T = self.schedule.n_train_steps
        t_start = T - 1 if t_start is None else int(t_start)
        check_range("t_start", t_start, 0, T - 1)
        if not isinstance(n_steps, int) or n_steps < 1:
            raise ConfigError(f"n_steps must be a positive integer, got {n_steps!r}.")
        n_steps = min(n_steps, t_start + 1)
        ts = torch.linspace(t_start, 0, n_steps, dtype=torch.float64).round().long()
        ts = torch.unique_consecutive(ts)
        self.timesteps = ts
        self._prev = {int(a): int(b) for a, b in zip(ts[:-1], ts[1:])}
        self._prev[int(ts[-1])] = -1
        return ts

    def prev_timestep(self, t: int | torch.Tensor) -> int:
        t = int(t)
        if t not in self._prev:
            raise ConfigError(f"Timestep {t} is not one of the sampler's timesteps; call set_timesteps first.")
        return self._prev[t]

    def _step_alphas(self, t: int | torch.Tensor, x_t: torch.Tensor) -> tuple[int, torch.Tensor, torch.Tensor]:
        """(t', abar_t, abar_t') of the step from t to the previous strided timestep t'."""
        t_prev = self.prev_timestep(t)
        return t_prev, self.schedule.abar(int(t), x_t), self.schedule.abar(t_prev, x_t)

    def _x0_eps(self, model_output: torch.Tensor, t: int, x_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x0, eps = self.schedule.to_x0_eps(model_output, t, x_t)
        if self.clip_x0 is not None:
            # Clip the clean estimate and recompute eps so the step stays consistent (DDIM eq. 12).
            x0 = x0.clamp(-self.clip_x0, self.clip_x0)
            a = self.schedule.abar(t, x_t)
            eps = (x_t - a.sqrt() * x0) / (1 - a).sqrt()
        return x0, eps


class DDIMSampler(_StridedSampler):
    """DDIM (Song, Meng & Ermon, ICLR 2021).

    Parameters
    ----------
    schedule : NoiseSchedule
    eta : float
        0 = deterministic DDIM, 1 = the DDPM posterior variance (eq. 16).
    clip_x0 : float, optional
        Clip x0_hat to [-clip_x0, clip_x0] before the update (data normalised to about [-1, 1]).
    """

    def __init__(self, schedule: NoiseSchedule, *, eta: float = 0.0, clip_x0: float | None = None) -> None:
        super().__init__(schedule, clip_x0=clip_x0)
        check_range("eta", eta, 0.0, 1.0)
        self.eta = float(eta)

    def step(self, model_output: torch.Tensor, t: int | torch.Tensor, x_t: torch.Tensor, *,
             generator: torch.Generator | None = None) -> StepOutput:
        # 1. previous timestep t' and the cumulative alphas abar_t, abar_t'
        t = int(t)
        t_prev, abar_t, abar_prev = self._step_alphas(t, x_t)
        # 2. predicted x_0 and eps ("predicted x_0" of eq. 12)
        pred_x0, pred_eps = self._x0_eps(model_output, t, x_t)
        # 3. sigma_t(eta) (eq. 16)
        sigma = self.eta * ((1 - abar_prev) / (1 - abar_t) * (1 - abar_t / abar_prev)).clamp_min(0).sqrt()
        # 4. "direction pointing to x_t" (eq. 12)
        direction = (1 - abar_prev - sigma**2).clamp_min(0).sqrt() * pred_eps
        # 5. x_{t'} = sqrt(abar_t') x0_hat + direction + sigma_t z (eq. 12)
        prev = abar_prev.sqrt() * pred_x0 + direction
        if self.eta > 0 and t_prev >= 0:
            z = torch.randn(x_t.shape, generator=generator, device=x_t.device, dtype=x_t.dtype)
            prev = prev + sigma * z
        return StepOutput(prev_sample=prev, pred_x0=pred_x0)


class DDPMSampler(_StridedSampler):
    """Ancestral DDPM (Ho, Jain & Abbeel 2020), with strided timesteps.

    x_{t'} ~ q(x_{t'} | x_t, x0_hat) = N(mu_tilde, beta_tilde I) (eq. 6-7), with the step's
    beta' = 1 - abar_t / abar_t' in place of beta_t when timesteps are skipped.
    """

    def step(self, model_output: torch.Tensor, t: int | torch.Tensor, x_t: torch.Tensor, *,
             generator: torch.Generator | None = None) -> StepOutput:
        # 1. t', abar_t, abar_t', and the step's alpha' = abar_t / abar_t', beta' = 1 - alpha'
        t = int(t)
        t_prev, abar_t, abar_prev = self._step_alphas(t, x_t)
        alpha_step = abar_t / abar_prev
        beta_step = 1 - alpha_step
        # 2. predicted x_0 (eq. 15)
        pred_x0, _ = self._x0_eps(model_output, t, x_t)
        # 3. posterior mean mu_tilde(x_t, x0_hat) (eq. 7)
        mean = (abar_prev.sqrt() * beta_step / (1 - abar_t)) * pred_x0 \
            + (alpha_step.sqrt() * (1 - abar_prev) / (1 - abar_t)) * x_t
        # 4. posterior variance beta_tilde = (1 - abar_t') / (1 - abar_t) beta' (eq. 7)
        if t_prev >= 0:
            var = ((1 - abar_prev) / (1 - abar_t) * beta_step).clamp_min(0)
            z = torch.randn(x_t.shape, generator=generator, device=x_t.device, dtype=x_t.dtype)
            mean = mean + var.sqrt() * z
        return StepOutput(prev_sample=mean, pred_x0=pred_x0)


def make_sampler(schedule: NoiseSchedule, kind: str = "ddim", *, eta: float = 0.0,
                 clip_x0: float | None = None) -> DDIMSampler | DDPMSampler:
    """Build a DDIM or DDPM sampler by name."""
    from neurovox.utils.check import check_option

    check_option("sampler", kind, ("ddim", "ddpm"))
    if kind == "ddim":
        return DDIMSampler(schedule, eta=eta, clip_x0=clip_x0)
    return DDPMSampler(schedule, clip_x0=clip_x0)


@torch.no_grad()
def sample_prior(denoiser: torch.nn.Module, sampler: DDIMSampler | DDPMSampler, shape: tuple[int, ...], *,
                 n_steps: int = 50, generator: torch.Generator | None = None,
                 device: str | torch.device = "cpu", progress: bool = False) -> torch.Tensor:
    """Unconditional samples x_0 ~ p(x), shape `shape` (e.g. (batch, 1, 80, n_frames))."""
    from tqdm.auto import tqdm

    x = torch.randn(shape, generator=generator, device=device)
    sampler.set_timesteps(n_steps)
    for t in tqdm(sampler.timesteps, desc="sampling", disable=not progress, leave=False):
        tt = torch.full((shape[0],), int(t), device=device, dtype=torch.long)
        x = sampler.step(denoiser(x, tt), t, x, generator=generator).prev_sample
    return x
