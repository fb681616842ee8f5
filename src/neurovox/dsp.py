"""Spectral conventions shared by every stage (features, synthesizer, metrics).

One definition of "the spectrogram" so targets, synthesizer output and metrics agree:

- audio at `SAMPLE_RATE_HZ` = 16 kHz; neural frames at `FRAME_RATE_HZ` = 125 Hz, so one frame is
  `HOP_SAMPLES` = 128 audio samples (8 ms).
- STFT: Hann window of `N_FFT` = 512 samples, hop 128, centred frames (frame i is centred on sample
  i * 128), zero padding at the edges; audio of n_frames * 128 samples gives n_frames frames (the
  extra last frame of a centred STFT is dropped).
- `N_BINS` = 256 linear bins over 0 - 8 kHz (bin k at k * 31.25 Hz; the Nyquist bin is dropped).
- Power |X|^2 without normalisation; dB as 10 log10(power + 1e-10).
- Mel: librosa's Slaney filterbank (80 bins, 0 - 8 kHz) applied to those 256 bins.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

SAMPLE_RATE_HZ = 16_000
FRAME_RATE_HZ = 125.0
HOP_SAMPLES = 128
N_FFT = 512
N_BINS = 256
N_MELS = 80
POWER_EPS = 1e-10
BIN_HZ = SAMPLE_RATE_HZ / N_FFT  # 31.25 Hz


def bin_frequencies_hz(n_bins: int = N_BINS) -> np.ndarray:
    """Centre frequency of each linear bin, shape (n_bins,)."""
    return np.arange(n_bins) * BIN_HZ


@functools.lru_cache(maxsize=16)
def _hann(n_fft: int, device: str, dtype: torch.dtype) -> torch.Tensor:
    return torch.hann_window(n_fft, periodic=True, dtype=dtype, device=device)


def stft_power(wave: torch.Tensor, n_fft: int = N_FFT, hop: int = HOP_SAMPLES, n_bins: int | None = None) -> torch.Tensor:
    """Power spectrogram of a waveform (differentiable).

    Parameters
    ----------
    wave : Tensor, shape (batch, n_samples) or (n_samples,)
        Audio at 16 kHz.
    n_fft, hop : int
        Window length and hop in samples (defaults: 512 and 128).
    n_bins : int, optional
        Number of bins kept from 0 Hz (default: n_fft // 2, i.e. the Nyquist bin dropped).

    Returns
    -------
    power : Tensor, shape (batch, n_frames, n_bins) with n_frames = n_samples // hop
    """
    squeeze = wave.ndim == 1
    if squeeze:
        wave = wave[None]
    n_frames = wave.shape[-1] // hop
    n_bins = n_fft // 2 if n_bins is None else n_bins
    spec = torch.stft(wave, n_fft=n_fft, hop_length=hop, win_length=n_fft,
                      window=_hann(n_fft, str(wave.device), wave.dtype), center=True,
                      pad_mode="constant", return_complex=True)  # (batch, n_fft//2+1, n_frames+1)
    power = spec.real.square() + spec.imag.square()
    power = power[:, :n_bins, :n_frames].transpose(1, 2)  # (batch, n_frames, n_bins)
    return power[0] if squeeze else power


def stft_power_np(wave: np.ndarray, n_fft: int = N_FFT, hop: int = HOP_SAMPLES, n_bins: int | None = None) -> np.ndarray:
    """NumPy wrapper of `stft_power` (float32 in, float32 out)."""
    return stft_power(torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)), n_fft, hop, n_bins).numpy()


def power_to_db(power: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    if isinstance(power, torch.Tensor):
        return 10.0 * torch.log10(power + POWER_EPS)
    return 10.0 * np.log10(np.asarray(power) + POWER_EPS)


@functools.lru_cache(maxsize=8)
def mel_filterbank(n_mels: int = N_MELS, n_bins: int = N_BINS, sample_rate_hz: int = SAMPLE_RATE_HZ,
                   n_fft: int = N_FFT, fmin_hz: float = 0.0, fmax_hz: float | None = None) -> np.ndarray:
    """Slaney mel filterbank from librosa restricted to the first `n_bins` bins, shape (n_mels, n_bins)."""
    import librosa

    fb = librosa.filters.mel(sr=sample_rate_hz, n_fft=n_fft, n_mels=n_mels, fmin=fmin_hz,
                             fmax=fmax_hz if fmax_hz is not None else sample_rate_hz / 2)
    return np.ascontiguousarray(fb[:, :n_bins], dtype=np.float32)


def power_to_mel(power: torch.Tensor | np.ndarray, n_mels: int = N_MELS) -> torch.Tensor | np.ndarray:
    """Mel power from linear power, (..., n_bins) -> (..., n_mels)."""
    fb = mel_filterbank(n_mels, power.shape[-1])
    if isinstance(power, torch.Tensor):
        return power @ torch.from_numpy(fb).to(power).T
    return np.asarray(power) @ fb.T


def safe_log(x: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    return torch.log(x.clamp_min(eps))


def safe_divide(num: torch.Tensor, den: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    return num / torch.where(den.abs() < eps, torch.full_like(den, eps), den)
