"""Stage-1 losses: spectral distances (linear-dB, mel-dB, multi-resolution), Praat supervision and
light regularisers. Plain functions on tensors, shared by the speech autoencoder and the decoders.
"""

from __future__ import annotations

import functools

import torch

from neurovox import dsp

DB_FLOOR_POWER = 1e-6  # STFT power floor before dB in the losses (about -60 dB, below any speech)


def _db(power: torch.Tensor) -> torch.Tensor:
    return 10.0 * torch.log10(power + DB_FLOOR_POWER)


@functools.lru_cache(maxsize=8)
def _mel_fb(device: str) -> torch.Tensor:
    return torch.from_numpy(dsp.mel_filterbank()).to(device)


def spectral_loss(pred_power: torch.Tensor, target_power: torch.Tensor, mask: torch.Tensor | None = None,
                  mel_weight: float = 1.0, linear_weight: float = 1.0) -> torch.Tensor:
    """L1 distance in dB/10 between power spectrograms on the linear and mel scales.

    pred_power, target_power : (batch, n_frames, 256) STFT power; mask : (batch, n_frames) frame weights.
    """
    lin = (_db(pred_power) - _db(target_power)).abs().mean(-1)
    fb = _mel_fb(str(pred_power.device)).to(pred_power.dtype)
    mel = (_db(pred_power @ fb.T) - _db(target_power @ fb.T)).abs().mean(-1)
    per_frame = (linear_weight * lin + mel_weight * mel) / 10.0  # (batch, n_frames)
    if mask is None:
        return per_frame.mean()
    mask = mask.to(per_frame.dtype)
    return (per_frame * mask).sum() / mask.sum().clamp_min(1.0)


def multires_loss(pred_wave: torch.Tensor, target_wave: torch.Tensor,
                  n_ffts: tuple[int, ...] = (2048, 1024, 256, 128)) -> torch.Tensor:
    """Multi-resolution log-power L1 (dB/10) between waveforms, averaged over FFT sizes (hop n_fft/4)."""
    total = 0.0
    for n_fft in n_ffts:
        p = dsp.stft_power(pred_wave, n_fft=n_fft, hop=n_fft // 4)
        t = dsp.stft_power(target_wave, n_fft=n_fft, hop=n_fft // 4)
        total = total + (_db(p) - _db(t)).abs().mean() / 10.0
    return total / len(n_ffts)


def log_freq_loss(pred_hz: torch.Tensor, target_hz: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Weighted L1 between log2 frequencies (octaves); weight 0 where the target is undefined."""
    ok = weight > 0
    target = torch.where(ok, target_hz, torch.ones_like(target_hz))
    err = (torch.log2(pred_hz.clamp_min(1.0)) - torch.log2(target.clamp_min(1.0))).abs()
    weight = weight.to(err.dtype)
    return (err * weight).sum() / weight.sum().clamp_min(1.0)


def praat_loss(controls: dict[str, torch.Tensor], f0_hz: torch.Tensor, voiced: torch.Tensor,
               formants_hz: torch.Tensor, n_formants: int = 3) -> torch.Tensor:
    """Supervision from Praat tracks: f0 on voiced frames, the first `n_formants` formants where defined
    (voiced frames only; Praat formants in silence are noise). Log-frequency L1, in octaves."""
    v = voiced.to(torch.float32)
    loss = log_freq_loss(controls["f0_hz"], f0_hz, v * (f0_hz > 0))
    fmt = torch.nan_to_num(formants_hz[..., :n_formants], nan=0.0)
    w = v[..., None] * (fmt > 0)
    loss = loss + log_freq_loss(controls["formant_hz"][..., :n_formants], fmt, w)
    # Voicing follows Praat's voiced/unvoiced decision (weakly).
    p = controls["voicing"].clamp(1e-4, 1 - 1e-4)
    bce = -(v * torch.log(p) + (1 - v) * torch.log1p(-p)).mean()
    return loss + 0.1 * bce


def regularisers(controls: dict[str, torch.Tensor], speech_mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Light priors: formant ordering (F_i < F_{i+1} with 100 Hz margin, octaves), temporal smoothness
    of log f0 and log formants, and silence -> low loudness (outside `speech_mask`)."""
    log_f = torch.log2(controls["formant_hz"])
    order = torch.relu(torch.log2(controls["formant_hz"][..., :-1] + 100.0) - log_f[..., 1:]).mean()
    smooth = ((log_f[:, 1:] - log_f[:, :-1]).abs().mean()
              + (torch.log2(controls["f0_hz"][:, 1:]) - torch.log2(controls["f0_hz"][:, :-1])).abs().mean())
    out = {"order": order, "smooth": smooth}
    if speech_mask is not None:
        silent = (~speech_mask.bool()).to(controls["loudness"].dtype)
        out["silence"] = (controls["loudness"] * silent).sum() / silent.sum().clamp_min(1.0)
    return out


def compressed_multires_loss(pred_wave: torch.Tensor, target_wave: torch.Tensor,
                             n_ffts: tuple[int, ...] = (2048, 1024, 512, 256), exponent: float = 0.25) -> torch.Tensor:
    """Multi-resolution L1 between compressed power spectrograms (power ** exponent, hop n_fft/4).

    Peaks dominate (unlike dB), which gives well-behaved gradients for f0 and formant positions.
    Summed over FFT sizes.
    """
    total = 0.0
    for n_fft in n_ffts:
        p = dsp.stft_power(pred_wave, n_fft=n_fft, hop=n_fft // 4).clamp_min(1e-12) ** exponent
        t = dsp.stft_power(target_wave, n_fft=n_fft, hop=n_fft // 4).clamp_min(1e-12) ** exponent
        total = total + (p - t).abs().mean()
    return total
