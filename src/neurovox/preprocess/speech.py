"""Speech features aligned to the 125 Hz neural frames (frame i <-> audio samples [128 i, 128 (i + 1))).

All spectral features use `neurovox.dsp` (THE spectrogram convention): the STFT frame i is centred
on audio sample 128 i (time i * 8 ms), so Praat tracks are sampled at those same times.

- `spec_power` (n_frames, 256): `dsp.stft_power_np`.
- `mel_db` (n_frames, 80): `dsp.power_to_db(dsp.power_to_mel(spec_power))`.
- `mel23_log` (n_frames, 23), SWPD-style baseline target: natural log of the 23-band Slaney mel
  power (0 - 8 kHz) of the same power spectrogram, floored at 1e-10 (the SWPD pipeline uses 23
  log-mel bands; ours sits on the 125 Hz clock with the dsp window, not SWPD's 50 ms / 10 ms).
- `whisper_log_mel` (n_frames_100hz, 80): Whisper's feature-extractor definition (n_fft 400, hop
  160, periodic Hann, centred with reflect padding, last frame dropped, power, librosa Slaney mel
  80, log10 clamped at 1e-10, floored at max - 8, then (x + 4) / 4); no 30-s padding.
- Praat (praat-parselmouth): pitch (autocorrelation; floor/ceiling from the participant's sex),
  intensity, Burg formants (6 formants, 25 ms window, ceiling 5000 Hz male / 5500 Hz female;
  formants Praat does not find below the ceiling are NaN), read with Praat's own
  `get_value_at_time` / `get_value(.., LINEAR)` (linear interpolation) at the frame times.
- `noise_power` (256,): mean power of pre-speech silence frames (see `noise_frame_mask`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from neurovox import dsp
from neurovox.errors import DataError

if TYPE_CHECKING:
    from neurovox.preprocess.config import PrepareConfig

N_FORMANTS = 6
N_MELS_SWPD = 23
PITCH_RANGE_HZ = {"M": (60.0, 300.0), "F": (100.0, 500.0), "unknown": (60.0, 500.0)}
MAX_FORMANT_HZ = {"M": 5000.0, "F": 5500.0, "unknown": 5500.0}


@dataclass
class SpeechFeatures:
    """Per-frame speech features on the 125 Hz clock (n_frames = len(audio) // 128)."""

    spec_power: np.ndarray     # (n_frames, 256) float32, linear power
    mel_db: np.ndarray         # (n_frames, 80) float32, dB
    mel23_log: np.ndarray      # (n_frames, 23) float32, natural log
    f0_hz: np.ndarray          # (n_frames,) float32, 0 where unvoiced
    voiced: np.ndarray         # (n_frames,) bool
    formants_hz: np.ndarray    # (n_frames, 6) float32, NaN where undefined
    intensity_db: np.ndarray   # (n_frames,) float32, dB (Praat), edges held at the nearest defined value


def frame_times_s(n_frames: int) -> np.ndarray:
    """Centre time of each dsp STFT frame (i * 128 / 16000 s), shape (n_frames,)."""
    return np.arange(n_frames) * (dsp.HOP_SAMPLES / dsp.SAMPLE_RATE_HZ)


def swpd_log_mel(spec_power: np.ndarray) -> np.ndarray:
    """23-band natural-log mel of a dsp power spectrogram, (n_frames, 256) -> (n_frames, 23)."""
    return np.log(np.maximum(dsp.power_to_mel(np.asarray(spec_power, np.float64), N_MELS_SWPD), 1e-10)).astype(np.float32)


def whisper_log_mel(audio_16k: np.ndarray, n_mels: int = 80) -> np.ndarray:
    """Whisper-compatible log-mel (see module docstring), shape (n_frames, n_mels) at 100 Hz.

    n_frames = len(audio) // 160 (the centred STFT's extra last frame is dropped, as Whisper does).
    """
    import librosa

    audio = np.asarray(audio_16k, dtype=np.float32)
    stft = librosa.stft(audio, n_fft=400, hop_length=160, window="hann", center=True, pad_mode="reflect")
    power = np.abs(stft[:, :-1]) ** 2                                   # (201, n_frames)
    fb = librosa.filters.mel(sr=dsp.SAMPLE_RATE_HZ, n_fft=400, n_mels=n_mels)  # Slaney, as Whisper's mel_filters
    log_spec = np.log10(np.maximum(fb @ power, 1e-10))
    log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
    return ((log_spec + 4.0) / 4.0).T.astype(np.float32)


def praat_settings(sex: str, pitch_floor_hz: float = 0.0, pitch_ceiling_hz: float = 0.0,
                   max_formant_hz: float = 0.0) -> tuple[float, float, float]:
    """(pitch floor, pitch ceiling, formant ceiling) in Hz; zeros are taken from the participant's sex."""
    key = sex if sex in PITCH_RANGE_HZ else "unknown"
    lo, hi = PITCH_RANGE_HZ[key]
    return (pitch_floor_hz or lo, pitch_ceiling_hz or hi, max_formant_hz or MAX_FORMANT_HZ[key])


def praat_features(audio_16k: np.ndarray, n_frames: int, *, sex: str = "unknown", pitch_floor_hz: float = 0.0,
                   pitch_ceiling_hz: float = 0.0, max_formant_hz: float = 0.0,
                   formant_window_s: float = 0.025) -> dict[str, np.ndarray]:
    """Praat pitch, intensity and Burg formants at the frame times (parselmouth).

    Returns
    -------
    dict with f0_hz (n_frames,) (0 = unvoiced), voiced (n_frames,) bool, formants_hz (n_frames, 6)
    (NaN = undefined), intensity_db (n_frames,).
    """
    import parselmouth

    floor_hz, ceiling_hz, fmax_hz = praat_settings(sex, pitch_floor_hz, pitch_ceiling_hz, max_formant_hz)
    snd = parselmouth.Sound(np.asarray(audio_16k, dtype=np.float64), sampling_frequency=dsp.SAMPLE_RATE_HZ)
    step_s = dsp.HOP_SAMPLES / dsp.SAMPLE_RATE_HZ
    times = frame_times_s(n_frames)
    pitch = snd.to_pitch_ac(time_step=step_s, pitch_floor=floor_hz, pitch_ceiling=ceiling_hz)
    f0 = np.array([pitch.get_value_at_time(t) for t in times], dtype=np.float64)
    voiced = np.isfinite(f0) & (f0 > 0)
    f0 = np.where(voiced, f0, 0.0)
    formant = snd.to_formant_burg(time_step=step_s, max_number_of_formants=N_FORMANTS,
                                  maximum_formant=fmax_hz, window_length=formant_window_s)
    formants = np.array([[formant.get_value_at_time(k, t) for k in range(1, N_FORMANTS + 1)] for t in times],
                        dtype=np.float64).reshape(n_frames, N_FORMANTS)
    intensity = snd.to_intensity(minimum_pitch=floor_hz, time_step=step_s, subtract_mean=False)
    inten = np.array([intensity.get_value(t, parselmouth.ValueInterpolation.LINEAR) for t in times], dtype=np.float64)
    ok = np.isfinite(inten)
    if ok.any():
        idx = np.flatnonzero(ok)
        inten = np.interp(np.arange(n_frames), idx, inten[idx])  # hold the edges (Praat leaves them undefined)
    else:
        inten = np.zeros(n_frames)
    return {"f0_hz": f0.astype(np.float32), "voiced": voiced, "formants_hz": formants.astype(np.float32),
            "intensity_db": inten.astype(np.float32)}


def compute_speech_features(audio_16k: np.ndarray, cfg: PrepareConfig | None = None, *,
                            sex: str = "unknown") -> SpeechFeatures:
    """All per-frame speech features of 16 kHz audio.

    Parameters
    ----------
    audio_16k : ndarray, shape (n_samples,)
        Mono audio at 16 kHz; n_frames = n_samples // 128.
    cfg : PrepareConfig, optional
        Praat settings (`praat`, pitch/formant ranges, formant window). Without Praat
        (`cfg.praat=False`) f0/formants/intensity are zeros/NaN.
    sex : {"M", "F", "unknown"}
        Sets the default pitch range and formant ceiling.
    """
    from neurovox.preprocess.config import PrepareConfig

    cfg = PrepareConfig() if cfg is None else cfg
    audio = np.asarray(audio_16k, dtype=np.float32)
    if audio.ndim != 1:
        raise DataError(f"audio_16k must be mono, shape (n_samples,), got {audio.shape}.")
    n_frames = len(audio) // dsp.HOP_SAMPLES
    if n_frames == 0:
        raise DataError(f"audio_16k has {len(audio)} samples, fewer than one 128-sample frame.")
    power = dsp.stft_power_np(audio[: n_frames * dsp.HOP_SAMPLES])
    mel_db = dsp.power_to_db(dsp.power_to_mel(power)).astype(np.float32)
    if cfg.praat:
        pr = praat_features(audio[: n_frames * dsp.HOP_SAMPLES], n_frames, sex=sex, pitch_floor_hz=cfg.pitch_floor_hz,
                            pitch_ceiling_hz=cfg.pitch_ceiling_hz, max_formant_hz=cfg.max_formant_hz,
                            formant_window_s=cfg.formant_window_s)
    else:
        pr = {"f0_hz": np.zeros(n_frames, np.float32), "voiced": np.zeros(n_frames, bool),
              "formants_hz": np.full((n_frames, N_FORMANTS), np.nan, np.float32),
              "intensity_db": np.zeros(n_frames, np.float32)}
    return SpeechFeatures(spec_power=power.astype(np.float32), mel_db=mel_db, mel23_log=swpd_log_mel(power), **pr)


def trial_frames(trials: pd.DataFrame, n_frames: int, frame_rate_hz: float = dsp.FRAME_RATE_HZ) -> tuple[np.ndarray, np.ndarray]:
    """Speech onset frame (floor) and offset frame (ceil, exclusive) of each trial, clipped to the recording."""
    on = np.floor(trials["onset_s"].to_numpy(float) * frame_rate_hz + 1e-9).astype(np.int64)
    off = np.ceil(trials["offset_s"].to_numpy(float) * frame_rate_hz - 1e-9).astype(np.int64)
    on = np.clip(on, 0, n_frames - 1)
    off = np.clip(np.maximum(off, on + 1), 1, n_frames)
    return on, off


def noise_frame_mask(onset_frame: np.ndarray, offset_frame: np.ndarray, n_frames: int, *,
                     context_frames: int, guard_frames: int) -> np.ndarray:
    """Pre-speech silence: frames within `context_frames` before an onset, at least `guard_frames` from any speech."""
    speech = np.zeros(n_frames + 1, dtype=np.int64)
    np.add.at(speech, np.clip(onset_frame - guard_frames, 0, n_frames), 1)
    np.add.at(speech, np.clip(offset_frame + guard_frames, 0, n_frames), -1)
    near_speech = np.cumsum(speech)[:n_frames] > 0
    pre = np.zeros(n_frames, dtype=bool)
    for on in onset_frame:
        pre[max(0, on - context_frames): on] = True
    return pre & ~near_speech


def noise_spectrum(spec_power: np.ndarray, onset_frame: np.ndarray, offset_frame: np.ndarray, *,
                   context_frames: int, guard_frames: int,
                   frame_mask: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    """Mean background-noise power spectrum (256,) from pre-speech silence, and how it was obtained.

    `frame_mask` (n_frames,) bool restricts it to those frames (a split's `train_frame_mask`: a model
    must not learn the background of its test trials); None uses every frame.
    """
    allowed = np.ones(len(spec_power), dtype=bool) if frame_mask is None else np.asarray(frame_mask, dtype=bool)
    mask = noise_frame_mask(onset_frame, offset_frame, len(spec_power),
                            context_frames=context_frames, guard_frames=guard_frames) & allowed
    which = "" if frame_mask is None else " of the training frames"
    if mask.sum() >= 5:
        return spec_power[mask].mean(axis=0).astype(np.float32), (
            f"noise spectrum from {int(mask.sum())} pre-speech silence frames{which}")
    pool = spec_power[allowed] if allowed.sum() >= 10 else spec_power
    energy = pool.sum(axis=1)
    quiet = energy <= np.quantile(energy, 0.1)
    return pool[quiet].mean(axis=0).astype(np.float32), (
        f"noise spectrum from the quietest 10% of frames{which} (too few pre-speech silence frames)")
