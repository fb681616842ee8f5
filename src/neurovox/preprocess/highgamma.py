"""Raw voltage -> high-gamma envelope frames, offline (zero-phase) or causal (streaming).

Pipeline: re-reference (bad channels excluded from every reference) -> notch the mains harmonics
in the band -> Butterworth band-pass (70-150 Hz Flinker, 70-170 Hz SWPD) -> envelope -> average
into frames of 8 ms (125 Hz) or 10 ms (100 Hz) -> optional log -> optional z-score against the
pre-stimulus baseline (-250..-50 ms before each speech onset, pooled over trials) and clipping.

- Offline: `sosfiltfilt` (zero phase) and the Hilbert envelope, processed in blocks of channels.
- Causal (`CausalHighGamma`): `sosfilt` with carried state, rectification and a causal low-pass
  (Butterworth, `envelope_lowpass_hz`) as the streaming envelope, and frame averages emitted only
  once a frame's last sample has arrived. Every operation runs sample-sequentially or per row, so
  processing a stream in chunks of ANY sizes gives bit-for-bit the same frames as one call on the
  whole signal, and frame i depends only on samples before the end of frame i.
"""

from __future__ import annotations

import numpy as np
import scipy.fft
import scipy.signal as ss

from neurovox.dsp import SAMPLE_RATE_HZ
from neurovox.errors import DataError
from neurovox.io.recording import Recording
from neurovox.preprocess.config import HighGammaConfig
from neurovox.preprocess.reference import (
    Reference, design_sos, detect_line_noise_hz, frame_average, frame_starts, make_reference,
)
from neurovox.utils.check import validate_type

LOG_FLOOR = 1e-30  # envelope floor before the log


class CausalHighGamma:
    """Streaming high-gamma extractor: only past samples influence each output frame.

    Parameters
    ----------
    sfreq_hz : float
        Sampling rate of the raw stream.
    reference : Reference
        Re-reference from `make_reference(channels)`; sets the input and output channel counts.
    cfg : HighGammaConfig
    line_hz : float
        Mains frequency to notch (0 = none); resolve auto-detection before streaming.
    mean, std : ndarray, shape (n_out_channels,), optional
        Fixed z-score statistics (e.g. from a calibration or training span); applied with clipping.

    Examples
    --------
    >>> hg = CausalHighGamma(1024.0, make_reference(rec.channels), HighGammaConfig(causal=True))
    >>> frames = hg.process(chunk)   # chunk (n_samples, n_channels) -> (n_new_frames, n_out_channels)
    """

    def __init__(self, sfreq_hz: float, reference: Reference, cfg: HighGammaConfig, line_hz: float = 0.0,
                 mean: np.ndarray | None = None, std: np.ndarray | None = None) -> None:
        self.sfreq_hz = float(sfreq_hz)
        self.reference = reference
        self.cfg = cfg
        self.line_hz = float(line_hz)
        self.sos_band = design_sos(sfreq_hz, cfg.band_low_hz, cfg.band_high_hz, cfg.filter_order, line_hz, cfg.notch_q)
        if not 0 < cfg.envelope_lowpass_hz < sfreq_hz / 2:
            raise DataError(f"causal mode needs 0 < envelope_lowpass_hz < Nyquist ({sfreq_hz / 2:g} Hz), "
                            f"got {cfg.envelope_lowpass_hz}.")
        self.sos_smooth = ss.butter(2, cfg.envelope_lowpass_hz, btype="lowpass", fs=sfreq_hz, output="sos")
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float64)
        self.std = None if std is None else np.asarray(std, dtype=np.float64)
        self.reset()

    def reset(self) -> None:
        """Forget the stream (filter states, partial frame, counters)."""
        n = self.reference.n_out
        self._zi_band = np.zeros((self.sos_band.shape[0], 2, n))
        self._zi_smooth = np.zeros((self.sos_smooth.shape[0], 2, n))
        self._pending = np.zeros((0, n))          # envelope samples of the incomplete frame
        self.n_samples_seen = 0
        self.n_frames_emitted = 0

    @property
    def n_channels(self) -> int:
        return self.reference.n_out

    def process(self, chunk: np.ndarray) -> np.ndarray:
        """Feed the next samples; return the frames completed by them.

        Parameters
        ----------
        chunk : ndarray, shape (n_samples, n_channels)
            Raw voltage, any number of samples (0 included).

        Returns
        -------
        frames : ndarray, shape (n_new_frames, n_out_channels), float32
        """
        chunk = np.asarray(chunk)
        if chunk.ndim != 2:
            raise DataError(f"CausalHighGamma.process expects a chunk of shape (n_samples, n_channels), got {chunk.shape}.")
        if chunk.shape[1] != self.reference.n_in:
            raise DataError(f"CausalHighGamma.process: chunk has {chunk.shape[1]} channels but the stream was set "
                            f"up for {self.reference.n_in} (the recording's channel table).")
        if chunk.shape[0] == 0:
            return np.zeros((0, self.n_channels), dtype=np.float32)
        x = self.reference.apply(chunk)                                   # (n, n_out) float64
        y, self._zi_band = ss.sosfilt(self.sos_band, x, axis=0, zi=self._zi_band)
        env, self._zi_smooth = ss.sosfilt(self.sos_smooth, np.abs(y), axis=0, zi=self._zi_smooth)
        env = np.abs(env) * (np.pi / 2)  # mean |sin| = 2/pi: rescale the rectified mean to the amplitude
        start = self.n_samples_seen - len(self._pending)                  # absolute index of pending[0]
        self.n_samples_seen += chunk.shape[0]
        buf = np.concatenate([self._pending, env], axis=0) if len(self._pending) else env
        # starts of the frames not yet emitted (only those: O(chunk) work per call on an endless stream)
        new = frame_starts(self.n_samples_seen, self.sfreq_hz, self.cfg.frame_rate_hz, self.n_frames_emitted)
        frames = frame_average(buf, new - start)
        self.n_frames_emitted += len(frames)
        self._pending = buf[new[-1] - start:].copy()
        return self._finish(frames)

    def _finish(self, frames: np.ndarray) -> np.ndarray:
        if self.cfg.log_envelope:
            frames = np.log(np.maximum(frames, LOG_FLOOR))
        if self.mean is not None:
            frames = (frames - self.mean) / self.std
            if self.cfg.clip_sd > 0:
                frames = np.clip(frames, -self.cfg.clip_sd, self.cfg.clip_sd)
        return frames.astype(np.float32)


def _offline_frames(raw: np.ndarray, sfreq_hz: float, reference: Reference, cfg: HighGammaConfig,
                    line_hz: float) -> np.ndarray:
    """Zero-phase band-pass + Hilbert envelope + frame averages, in blocks of output channels."""
    sos = design_sos(sfreq_hz, cfg.band_low_hz, cfg.band_high_hz, cfg.filter_order, line_hz, cfg.notch_q)
    n = raw.shape[0]
    starts = frame_starts(n, sfreq_hz, cfg.frame_rate_hz)
    refs = reference.group_refs(raw) if reference.mode == "average" else None
    n_fft = scipy.fft.next_fast_len(n, real=True)
    sos_env = (ss.butter(2, cfg.envelope_lowpass_hz, btype="lowpass", fs=sfreq_hz, output="sos")
               if 0 < cfg.envelope_lowpass_hz < sfreq_hz / 2 else None)
    out = np.empty((len(starts) - 1, reference.n_out), dtype=np.float64)

    def block(c0: int) -> None:
        cols = np.arange(c0, min(c0 + cfg.block_channels, reference.n_out))
        x = reference.apply(raw, cols, refs)                               # (n, block) float64
        y = ss.sosfiltfilt(sos, x, axis=0)
        del x
        env = np.abs(ss.hilbert(y, N=n_fft, axis=0)[:n])
        del y
        if sos_env is not None:
            env = ss.sosfiltfilt(sos_env, env, axis=0)
        out[:, cols] = frame_average(env, starts)

    # scipy's filters and FFTs release the GIL: `n_jobs` threads work on separate channel blocks
    blocks = range(0, reference.n_out, cfg.block_channels)
    if cfg.n_jobs > 1 and len(blocks) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=cfg.n_jobs) as pool:
            list(pool.map(block, blocks))
    else:
        for c0 in blocks:
            block(c0)
    if cfg.log_envelope:
        out = np.log(np.maximum(out, LOG_FLOOR))
    return out


def baseline_frame_mask(trials, n_frames: int, frame_rate_hz: float, start_s: float, stop_s: float) -> np.ndarray:
    """Frames lying wholly inside [onset + start_s, onset + stop_s] of some trial, shape (n_frames,) bool."""
    mask = np.zeros(n_frames, dtype=bool)
    for onset in trials["onset_s"].to_numpy(float):
        a = int(np.ceil((onset + start_s) * frame_rate_hz - 1e-9))
        b = int(np.floor((onset + stop_s) * frame_rate_hz + 1e-9))
        mask[max(a, 0): max(min(b, n_frames), 0)] = True
    return mask


def resample_audio(audio: np.ndarray, sfreq_hz: float, target_hz: float = SAMPLE_RATE_HZ) -> np.ndarray:
    """Polyphase resampling (scipy.signal.resample_poly) to `target_hz`, float32."""
    if sfreq_hz == target_hz:
        return np.asarray(audio, dtype=np.float32)
    from fractions import Fraction

    r = Fraction(target_hz).limit_denominator(100_000) / Fraction(sfreq_hz).limit_denominator(100_000)
    return ss.resample_poly(np.asarray(audio, dtype=np.float64), r.numerator, r.denominator).astype(np.float32)


def resolve_line_noise(rec: Recording, cfg: HighGammaConfig, reference: Reference) -> tuple[float, str]:
    """Mains frequency to notch and a note saying where it came from."""
    if cfg.line_noise_hz > 0:
        return cfg.line_noise_hz, f"notch {cfg.line_noise_hz:g} Hz harmonics (config)"
    if cfg.line_noise_hz < 0:
        return 0.0, "no line-noise notch (config)"
    # detect on the raw good channels: the common reference would cancel most of a shared mains signal
    n = min(rec.n_samples, int(60 * rec.neural_sfreq_hz))
    good = rec.good_mask if rec.good_mask.any() else np.ones(rec.n_channels, bool)
    x = rec.neural[:n][:, good].astype(np.float64)
    line_hz, peak_db = detect_line_noise_hz(x, rec.neural_sfreq_hz)
    if line_hz:
        return line_hz, f"notch {line_hz:g} Hz harmonics (auto-detected, peak {peak_db:.1f} dB above neighbours)"
    return 0.0, f"no line-noise notch (no 50/60 Hz peak found; largest {peak_db:.1f} dB)"


def extract_high_gamma(rec: Recording, cfg: HighGammaConfig | None = None) -> Recording:
    """High-gamma envelope frames from a raw recording.

    Parameters
    ----------
    rec : Recording
        `neural_kind="raw"`, shape (n_samples, n_channels) in volts, with audio on the same clock.
    cfg : HighGammaConfig
        Band, notch, offline/causal mode, frame rate, log, z-score and clipping settings.

    Returns
    -------
    Recording
        `neural_kind="high_gamma"`, neural (n_frames, n_out_channels) float32 at `cfg.frame_rate_hz`
        (frame i averages the envelope over [i / rate, (i + 1) / rate)); audio resampled to 16 kHz and
        trimmed to n_frames * 16000 / rate samples; channels re-referenced (bipolar sEEG renames them);
        bad channels kept and flagged. `meta.notes` records the notch, mode and normalisation.
    """
    cfg = HighGammaConfig() if cfg is None else cfg
    validate_type(rec, Recording, "rec")
    validate_type(cfg, HighGammaConfig, "cfg")
    where = rec.meta.source_path or "recording"
    if rec.neural_kind != "raw":
        raise DataError(f"extract_high_gamma needs raw voltage, but {where} holds neural_kind={rec.neural_kind!r} "
                        "(already high gamma). Use it as is, or load the raw recording.")
    min_hz = 2 * cfg.band_high_hz
    if rec.neural_sfreq_hz <= min_hz:
        raise DataError(f"{where} is sampled at {rec.neural_sfreq_hz:g} Hz, too low for a "
                        f"{cfg.band_low_hz:g}-{cfg.band_high_hz:g} Hz band (needs > {min_hz:g} Hz).")
    reference = make_reference(rec.channels, cfg.ecog_reference, cfg.seeg_reference)
    line_hz, line_note = resolve_line_noise(rec, cfg, reference)
    if cfg.causal:
        hg = CausalHighGamma(rec.neural_sfreq_hz, reference, cfg, line_hz)
        block = max(1, int(cfg.block_s * rec.neural_sfreq_hz))
        parts = [hg.process(rec.neural[s: s + block]) for s in range(0, rec.n_samples, block)]
        frames = np.concatenate(parts, axis=0).astype(np.float64)  # log (if any) applied by the streaming class
    else:
        frames = _offline_frames(rec.neural, rec.neural_sfreq_hz, reference, cfg, line_hz)

    samples_per_frame = SAMPLE_RATE_HZ / cfg.frame_rate_hz
    audio = resample_audio(rec.audio, rec.audio_sfreq_hz)
    n_frames = min(frames.shape[0], int(len(audio) // samples_per_frame))
    frames = frames[:n_frames]
    audio = audio[: int(round(n_frames * samples_per_frame))]

    lp = f" + low-pass {cfg.envelope_lowpass_hz:g} Hz" if cfg.envelope_lowpass_hz else ""
    mode = f"causal (sosfilt + rectify{lp})" if cfg.causal else f"offline (sosfiltfilt + Hilbert{lp})"
    notes = [f"high gamma {cfg.band_low_hz:g}-{cfg.band_high_hz:g} Hz, {mode}, {reference.mode} reference, "
             f"{line_note}, frames at {cfg.frame_rate_hz:g} Hz" + (", log" if cfg.log_envelope else "")]
    unit = "log V" if cfg.log_envelope else rec.neural_unit
    if cfg.zscore == "baseline":
        mask = baseline_frame_mask(rec.trials, n_frames, cfg.frame_rate_hz, cfg.baseline_start_s, cfg.baseline_stop_s)
        if mask.sum() < 2:
            raise DataError(f"no pre-stimulus baseline frames in {where} ({cfg.baseline_start_s}..{cfg.baseline_stop_s} s "
                            "before each onset fall outside the recording). Use zscore='none' and normalise "
                            "with training-split statistics (neurovox.preprocess.Normalizer).")
        mean = frames[mask].mean(axis=0)
        std = frames[mask].std(axis=0)
        std = np.where(std > 1e-12 * max(np.abs(mean).max(), 1e-30), std, 1.0)
        frames = (frames - mean) / std
        if cfg.clip_sd > 0:
            frames = np.clip(frames, -cfg.clip_sd, cfg.clip_sd)
        unit = "z (baseline)"
        notes.append(f"z-scored against {int(mask.sum())} pre-stimulus baseline frames "
                     f"({cfg.baseline_start_s * 1e3:g}..{cfg.baseline_stop_s * 1e3:g} ms), clipped at +-{cfg.clip_sd:g} sd")
    trials = rec.trials
    dur_s = n_frames / cfg.frame_rate_hz
    if (trials["offset_s"] > dur_s).any():  # trimming to whole frames may cut the last trial short
        keep = trials["onset_s"] < dur_s - 1.0 / cfg.frame_rate_hz
        trials = trials.loc[keep].reset_index(drop=True)
        trials["offset_s"] = np.minimum(trials["offset_s"].to_numpy(float), dur_s)
        notes.append(f"trial offsets clipped to the {dur_s:.3f} s of whole frames ({int((~keep).sum())} trials dropped)")
    if rec.extras:
        notes.append(f"dropped extras {sorted(rec.extras)} (they live on the raw clock)")
    meta = rec.meta
    out = rec.replace(neural=frames.astype(np.float32), neural_sfreq_hz=cfg.frame_rate_hz, neural_kind="high_gamma",
                      audio=audio, audio_sfreq_hz=float(SAMPLE_RATE_HZ), channels=reference.channels.copy(),
                      trials=trials, extras={}, neural_unit=unit)
    out.meta.notes = list(meta.notes) + notes
    return out
