"""Variance-preserving noise schedules (DDPM, Ho et al. 2020; cosine: Nichol & Dhariwal 2021).

The forward process is x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, eps ~ N(0, I), with
abar_t = prod_{s<=t} (1 - beta_s) for integer t in [0, n_train_steps). `NoiseSchedule` holds
beta, alpha and abar as buffers (computed in float64, stored as float32) so they follow
`.to(device)`; it also converts between the three parameterisations a denoiser may predict
(epsilon, x_0, v = sqrt(abar) eps - sqrt(1 - abar) x_0, Salimans & Ho 2022).

The denoiser (`neurovox.diffusion.denoiser`) knows nothing of this schedule; samplers
(`ddim.py`, `dps.py`) read it.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from neurovox.utils.check import check_option, check_range

SCHEDULES = ("linear", "cosine")
PREDICTIONS = ("epsilon", "v", "x0")


def linear_betas(n_train_steps: int, beta_start: float = 1e-4, beta_end: float = 2e-2) -> torch.Tensor:
    """DDPM linear betas (Ho et al. 2020, sec. 4), scaled so that any `n_train_steps` reaches the
    same final abar as the 1000-step schedule. Shape (n_train_steps,), float64."""
    scale = 1000.0 / n_train_steps
    return torch.linspace(beta_start * scale, beta_end * scale, n_train_steps, dtype=torch.float64)


def cosine_betas(n_train_steps: int, offset: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Cosine schedule, abar(t) = cos^2(((t/T) + s) / (1 + s) * pi/2) (Nichol & Dhariwal 2021, eq. 17).
    Shape (n_train_steps,), float64."""
    steps = torch.arange(n_train_steps + 1, dtype=torch.float64) / n_train_steps
    abar = torch.cos((steps + offset) / (1 + offset) * math.pi / 2) ** 2
    betas = 1 - abar[1:] / abar[:-1]
    return betas.clamp(max=max_beta)


class NoiseSchedule(nn.Module):
    """A discrete VP schedule and the conversions between predictions.

    Parameters
    ----------
    n_train_steps : int
        Number of diffusion steps T used in training (t = 0 .. T-1).
    kind : {"cosine", "linear"}
        Beta schedule.
    prediction : {"epsilon", "v", "x0"}
        What the denoiser outputs.
    """

    def __init__(self, n_train_steps: int = 1000, kind: str = "cosine", prediction: str = "epsilon") -> None:
        super().__init__()
        check_option("schedule kind", kind, SCHEDULES)
        check_option("prediction", prediction, PREDICTIONS)
        check_range("n_train_steps", n_train_steps, 2, None)
        self.n_train_steps = int(n_train_steps)
        self.kind = kind
        self.prediction = prediction
        betas = linear_betas(n_train_steps) if kind == "linear" else cosine_betas(n_train_steps)
        alphas = 1.0 - betas
        abar = torch.cumprod(alphas, dim=0)
        self.register_buffer("betas", betas.float())
        self.register_buffer("alphas", alphas.float())
        self.register_buffer("alphas_cumprod", abar.float())
        self.register_buffer("sqrt_abar", abar.sqrt().float())
        self.register_buffer("sqrt_one_minus_abar", (1 - abar).sqrt().float())

    def extra_repr(self) -> str:
        return f"n_train_steps={self.n_train_steps}, kind={self.kind!r}, prediction={self.prediction!r}"

    def config(self) -> dict:
        return {"n_train_steps": self.n_train_steps, "kind": self.kind, "prediction": self.prediction}

    # --- indexing --------------------------------------------------------------------------
    def _at(self, buf: torch.Tensor, t: torch.Tensor | int, like: torch.Tensor) -> torch.Tensor:
        """buf[t] broadcast to `like` (t: int or LongTensor (batch,))."""
        t = torch.as_tensor(t, device=buf.device, dtype=torch.long)
        out = buf[t].to(like.dtype)
        if out.ndim == 0:
            return out
        return out.reshape(-1, *([1] * (like.ndim - 1)))

    def abar(self, t: torch.Tensor | int, like: torch.Tensor) -> torch.Tensor:
        """abar_t; t = -1 means abar = 1 (the clean end of the chain)."""
        t = torch.as_tensor(t, device=self.alphas_cumprod.device, dtype=torch.long)
        padded = torch.cat([self.alphas_cumprod.new_ones(1), self.alphas_cumprod])
        out = padded[t + 1].to(like.dtype)
        return out if out.ndim == 0 else out.reshape(-1, *([1] * (like.ndim - 1)))

    # --- forward process -------------------------------------------------------------------
    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        """q(x_t | x_0): x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps (Ho et al. 2020, eq. 4)."""
        return self._at(self.sqrt_abar, t, x0) * x0 + self._at(self.sqrt_one_minus_abar, t, x0) * noise

    def velocity(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        """v = sqrt(abar_t) eps - sqrt(1 - abar_t) x_0 (Salimans & Ho 2022, sec. 4)."""
        return self._at(self.sqrt_abar, t, x0) * noise - self._at(self.sqrt_one_minus_abar, t, x0) * x0

    def training_target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """What the denoiser should output for (x_t, t) under this schedule's prediction type."""
        if self.prediction == "epsilon":
            return noise
        if self.prediction == "v":
            return self.velocity(x0, noise, t)
        return x0

    # --- prediction conversions --------------------------------------------------------------
    def to_x0_eps(self, model_output: torch.Tensor, t: torch.Tensor | int,
                  x_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(x0_hat, eps_hat) from the denoiser output. Differentiable in both arguments.

        epsilon: x0 = (x_t - sqrt(1 - abar) eps) / sqrt(abar)   (Ho et al. 2020, eq. 15)
        v:       x0 = sqrt(abar) x_t - sqrt(1 - abar) v,  eps = sqrt(1 - abar) x_t + sqrt(abar) v
        x0:      eps = (x_t - sqrt(abar) x0) / sqrt(1 - abar)
        """
        a = self._at(self.sqrt_abar, t, x_t)
        s = self._at(self.sqrt_one_minus_abar, t, x_t)
        if self.prediction == "epsilon":
            eps = model_output
            x0 = (x_t - s * eps) / a
        elif self.prediction == "v":
            x0 = a * x_t - s * model_output
            eps = s * x_t + a * model_output
        else:
            x0 = model_output
            eps = (x_t - a * x0) / s
        return x0, eps

    def to_model_output(self, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor | int,
                        x_t: torch.Tensor) -> torch.Tensor:
        """The denoiser output of this schedule's prediction type that gives (x0, eps) at (x_t, t);
        the inverse of `to_x0_eps` (used to hand a guided estimate to an unconditional sampler)."""
        if self.prediction == "epsilon":
            return eps
        if self.prediction == "x0":
            return x0
        return self._at(self.sqrt_abar, t, x_t) * eps - self._at(self.sqrt_one_minus_abar, t, x_t) * x0
