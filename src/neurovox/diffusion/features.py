"""The prior's data space and vocoding.

The diffusion prior and the likelihood model work on log-mel images scaled to about [-1, 1] by
FIXED constants (no data statistics, so every run, corpus and participant shares one scale):

    unit = (clip(mel_db, MEL_DB_FLOOR, None) - MEL_DB_CENTER) / MEL_DB_HALF_RANGE

mel_db is `neurovox.dsp` mel dB (10 log10 power of the unnormalised 512-point STFT of 16 kHz
audio in [-1, 1], 80 Slaney bins). On the shipped multi-voice corpus 1 % of bins lie below
-80 dB (silence; floored to -1) and the maximum is +25 dB (about +0.9); +30 dB maps to +1.

Vocoding mel -> waveform: `griffin_lim` (mel -> linear power by a non-negative approximate inverse,
then Griffin-Lim phase reconstruction, librosa) on the `neurovox.dsp` STFT grid.
"""

from __future__ import annotations

import numpy as np
import torch

from neurovox import dsp

MEL_DB_FLOOR = -80.0       # dB; quieter bins are treated as silence
MEL_DB_CENTER = -25.0      # dB; maps to 0
MEL_DB_HALF_RANGE = 55.0   # dB; -80 dB -> -1, +30 dB -> +1


def mel_db_to_unit(mel_db: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """mel dB (any shape) -> the prior's unit scale (same shape)."""
    if isinstance(mel_db, torch.Tensor):
        return (mel_db.clamp_min(MEL_DB_FLOOR) - MEL_DB_CENTER) / MEL_DB_HALF_RANGE
    return ((np.maximum(mel_db, MEL_DB_FLOOR) - MEL_DB_CENTER) / MEL_DB_HALF_RANGE).astype(np.float32)


def unit_to_mel_db(unit: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """Inverse of `mel_db_to_unit` (above the floor)."""
    return unit * MEL_DB_HALF_RANGE + MEL_DB_CENTER


def windows_to_images(mel_db: torch.Tensor) -> torch.Tensor:
    """(batch, n_frames, n_mels) mel dB -> (batch, 1, n_mels, n_frames) unit-scale images."""
    return mel_db_to_unit(mel_db).transpose(1, 2).unsqueeze(1)


def images_to_windows(images: torch.Tensor) -> torch.Tensor:
    """(batch, 1, n_mels, n_frames) unit images -> (batch, n_frames, n_mels) mel dB."""
    return unit_to_mel_db(images.squeeze(1).transpose(1, 2))


def mel_db_from_audio(audio: np.ndarray) -> np.ndarray:
    """16 kHz audio (n_samples,) -> mel dB (n_samples // 128, 80), exactly as `Prepared.mel_db`."""
    power = dsp.stft_power_np(np.asarray(audio, dtype=np.float32))
    return np.asarray(dsp.power_to_db(dsp.power_to_mel(power)), dtype=np.float32)


def mel_db_to_power(mel_db: np.ndarray) -> np.ndarray:
    """mel dB (n_frames, 80) -> linear power (n_frames, 256): each linear bin takes the power
    density of the mel bands that cover it (filter-weighted mean of mel power / band area), a
    fast non-negative approximate inverse of the Slaney filterbank."""
    fb = dsp.mel_filterbank(mel_db.shape[-1], dsp.N_BINS).astype(np.float64)   # (80, 256)
    mel_power = 10.0 ** (np.asarray(mel_db, dtype=np.float64) / 10.0)          # (n_frames, 80)
    density = mel_power / np.maximum(fb.sum(axis=1), 1e-12)                      # power per bin-weight
    weights = fb / np.maximum(fb.sum(axis=0, keepdims=True), 1e-12)             # (80, 256), columns sum to 1
    power = density @ weights                                                    # (n_frames, 256)
    return power.astype(np.float32)


def griffin_lim(mel_db: np.ndarray, *, n_iter: int = 32, seed: int = 0) -> np.ndarray:
    """Vocode mel dB (n_frames, 80) into audio (n_frames * 128,) float32 at 16 kHz.

    Uses the `neurovox.dsp` STFT (n_fft 512, hop 128, Hann, centred) and librosa's fast
    Griffin-Lim (Perraudin et al. 2013) with a seeded random initial phase.
    """
    import librosa

    n_frames = mel_db.shape[0]
    power = mel_db_to_power(mel_db)
    mag = np.sqrt(np.concatenate([power, np.zeros((n_frames, 1), np.float32)], axis=1)).T  # (257, n_frames)
    mag = np.concatenate([mag, mag[:, -1:]], axis=1)            # the centred STFT has one extra frame
    wave = librosa.griffinlim(mag, n_iter=n_iter, hop_length=dsp.HOP_SAMPLES, win_length=dsp.N_FFT,
                              n_fft=dsp.N_FFT, window="hann", center=True, init="random",
                              random_state=np.random.RandomState(seed), length=n_frames * dsp.HOP_SAMPLES)
    return wave.astype(np.float32)
