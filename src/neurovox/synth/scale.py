"""Scale functions: raw network outputs -> bounded physical controls (DDSP style).

Each function maps an unbounded tensor (any real value, including +-1e4 logits) into a fixed
range by construction, with finite gradients everywhere. They are named and passed to the
synthesizer as swappable defaults.
"""

from __future__ import annotations

import math

import torch

# Unit conversions ---------------------------------------------------------------------------


def hz_to_midi(f_hz: torch.Tensor) -> torch.Tensor:
    """Frequency in hertz -> MIDI note number (A4 = 440 Hz = 69)."""
    return 12.0 * torch.log2(f_hz.clamp_min(1e-3) / 440.0) + 69.0


def midi_to_hz(midi: torch.Tensor) -> torch.Tensor:
    """MIDI note number -> frequency in hertz."""
    return 440.0 * torch.pow(2.0, (midi - 69.0) / 12.0)


def amplitude_to_db(amplitude: torch.Tensor, min_db: float = -140.0) -> torch.Tensor:
    """Linear amplitude -> dB (20 log10), floored at `min_db`."""
    return (20.0 * torch.log10(amplitude.clamp_min(1e-12))).clamp_min(min_db)


# Bounding functions --------------------------------------------------------------------------


def exp_sigmoid(x: torch.Tensor, exponent: float = 10.0, max_value: float = 2.0,
                threshold: float = 1e-7) -> torch.Tensor:
    """Exponentiated sigmoid: output in [threshold, max_value + threshold].

    ``max_value * sigmoid(x) ** log(exponent) + threshold``; a positive amplitude whose logarithm
    is roughly linear in `x` over a wide range, so networks control loudness on a dB-like scale.
    """
    return max_value * torch.sigmoid(x) ** math.log(exponent) + threshold


def unit_to_hz(unit: torch.Tensor, hz_min: float | torch.Tensor, hz_max: float | torch.Tensor,
               log_scale: bool = True) -> torch.Tensor:
    """Map [0, 1] onto [hz_min, hz_max], geometrically (log_scale) or linearly."""
    hz_min = torch.as_tensor(hz_min, dtype=unit.dtype, device=unit.device)
    hz_max = torch.as_tensor(hz_max, dtype=unit.dtype, device=unit.device)
    if log_scale:
        f_hz = hz_min * torch.exp(unit * torch.log(hz_max / hz_min))
    else:
        f_hz = hz_min + unit * (hz_max - hz_min)
    return torch.minimum(torch.maximum(f_hz, hz_min), hz_max)  # rounding can overshoot by an ulp


def hz_to_unit(f_hz: torch.Tensor, hz_min: float | torch.Tensor, hz_max: float | torch.Tensor,
               log_scale: bool = True) -> torch.Tensor:
    """Inverse of `unit_to_hz` (values outside the range map outside [0, 1])."""
    hz_min = torch.as_tensor(hz_min, dtype=f_hz.dtype, device=f_hz.device)
    hz_max = torch.as_tensor(hz_max, dtype=f_hz.dtype, device=f_hz.device)
    if log_scale:
        return torch.log(f_hz.clamp_min(1e-3) / hz_min) / torch.log(hz_max / hz_min)
    return (f_hz - hz_min) / (hz_max - hz_min)


def sigmoid_to_hz(x: torch.Tensor, hz_min: float | torch.Tensor, hz_max: float | torch.Tensor,
                  log_scale: bool = True) -> torch.Tensor:
    """Raw logit -> frequency in [hz_min, hz_max] (sigmoid, then `unit_to_hz`)."""
    return unit_to_hz(torch.sigmoid(x), hz_min, hz_max, log_scale)


def logit(p: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Inverse sigmoid, clamped away from 0 and 1."""
    p = p.clamp(eps, 1.0 - eps)
    return torch.log(p) - torch.log1p(-p)


def inverse_exp_sigmoid(y: torch.Tensor, exponent: float = 10.0, max_value: float = 2.0,
                        threshold: float = 1e-7) -> torch.Tensor:
    """Raw value whose `exp_sigmoid` is `y` (clamped into the reachable range)."""
    unit = ((y - threshold).clamp_min(1e-30) / max_value) ** (1.0 / math.log(exponent))
    return logit(unit)


def softmax_amplitudes(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Relative amplitudes that are positive and sum to one along `dim`."""
    return torch.softmax(x, dim=dim)
