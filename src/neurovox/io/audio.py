"""Audio files: load (mixed to mono, resampled to the target rate, each with a notice) and write atomically."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from neurovox.errors import DataError, FormatError


def to_mono(audio: np.ndarray) -> np.ndarray:
    """Average the channels of (n_samples, n_channels) audio; 1-D input is returned as is.

    Returns
    -------
    mono : ndarray, shape (n_samples,), float32
    """
    audio = np.asarray(audio)
    if audio.ndim == 1:
        return audio.astype(np.float32, copy=False)
    if audio.ndim != 2:
        raise DataError(f"audio must be (n_samples,) or (n_samples, n_channels), got shape {audio.shape}.")
    return audio.mean(axis=1).astype(np.float32)


def resample_audio(audio: np.ndarray, orig_sfreq_hz: float, target_sfreq_hz: float) -> np.ndarray:
    """Polyphase resampling (scipy.signal.resample_poly, Kaiser window) of 1-D audio.

    Output length is ``ceil(n_samples * target / orig)``. Rates must form a rational ratio with
    a denominator below 10,000 (true for every audio rate in use).
    """
    from fractions import Fraction

    from scipy.signal import resample_poly

    if orig_sfreq_hz == target_sfreq_hz:
        return np.asarray(audio, dtype=np.float32)
    ratio = Fraction(float(target_sfreq_hz) / float(orig_sfreq_hz)).limit_denominator(10_000)
    out = resample_poly(np.asarray(audio, dtype=np.float64), ratio.numerator, ratio.denominator)
    n_out = math.ceil(len(audio) * target_sfreq_hz / orig_sfreq_hz - 1e-9)
    return out[:n_out].astype(np.float32)


def load_wav(path: str | os.PathLike, target_sfreq_hz: float | None = 16000) -> tuple[np.ndarray, list[str]]:
    """Read an audio file (WAV, FLAC, OGG: anything libsndfile reads) as float32 mono.

    Parameters
    ----------
    path : path-like
    target_sfreq_hz : float or None
        Resample to this rate (default 16 kHz, the synthesizer's rate); None keeps the file's rate.

    Returns
    -------
    audio : ndarray, shape (n_samples,), float32 in [-1, 1]
        At `target_sfreq_hz` (or the file's rate when None).
    notices : list of str
        What was changed: stereo mixed down, rate converted.
    """
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(2, "No such file", str(path))
    try:
        audio, sfreq = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:   # soundfile raises LibsndfileError / RuntimeError on bad files
        raise FormatError(f"cannot read {path} as audio ({exc}). Expected WAV/FLAC/OGG.") from exc
    notices = []
    if audio.shape[1] > 1:
        notices.append(f"{path.name}: {audio.shape[1]} audio channels mixed down to mono.")
    audio = to_mono(audio)
    if target_sfreq_hz is not None and sfreq != target_sfreq_hz:
        audio = resample_audio(audio, sfreq, target_sfreq_hz)
        notices.append(f"{path.name}: resampled from {sfreq:g} Hz to {target_sfreq_hz:g} Hz.")
    return audio, notices


def playable(wave: np.ndarray) -> np.ndarray:
    """Peak-normalised to -1 dBFS for listening, shape kept, float32 (metrics are computed before this)."""
    w = np.asarray(wave, dtype=np.float64)
    peak = np.abs(w).max() if w.size else 0.0
    return (w / peak * 0.89 if peak > 0 else w).astype(np.float32)


def write_wav(path: str | os.PathLike, audio: np.ndarray, sfreq_hz: float, *, subtype: str = "FLOAT") -> Path:
    """Write mono audio atomically (temporary name, then rename).

    Parameters
    ----------
    path : path-like
    audio : ndarray, shape (n_samples,)
    sfreq_hz : float
    subtype : str
        libsndfile subtype: "FLOAT" (exact float32, default) or "PCM_16" (values clipped to [-1, 1]).
    """
    import soundfile as sf

    from neurovox.utils.files import atomic_path

    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise DataError(f"write_wav expects mono audio of shape (n_samples,), got {audio.shape}; use to_mono().")
    if not np.isfinite(audio).all():
        raise DataError(f"audio for {path} contains NaN/Inf samples.")
    if subtype.startswith("PCM"):
        audio = np.clip(audio, -1.0, 1.0)
    with atomic_path(path) as tmp:
        sf.write(str(tmp), audio, int(round(sfreq_hz)), subtype=subtype, format="WAV")
    return Path(path)
