"""Raw voltage -> high-gamma envelope frames, offline (zero-phase) or causal (streaming).

Pipeline: re-reference (bad channels excluded from every reference) -> notch the mains harmonics
in the band -> Butterworth band-pass (70-150 Hz Flinker, 70-170 Hz SWPD) -> envelope -> average
into frames of 8 ms (125 Hz) or 10 ms (100 Hz) -> optional log -> optional z-score against the
pre-stimulus baseline (-250..-50 ms before each speech onset, pooled over the trials outside a split's
test set: `training_baseline_mask`) and clipping.

- Offline: `sosfiltfilt` (zero phase) and the Hilbert envelope, processed in blocks of channels.
- Causal (`CausalHighGamma`): `sosfilt` with carried state, rectification and a causal low-pass
  (Butterworth, `envelope_lowpass_hz`) as the streaming envelope, and frame averages emitted only
  once a frame's last sample has arrived. Every operation runs sample-sequentially or per row, so
  processing a stream in chunks of ANY sizes gives bit-for-bit the same frames as one call on the
  whole signal, and frame i depends only on samples before the end of frame i.

Recordings larger than memory (the reader left the raw array on disk: `neurovox.io.LazyNeural`)
are processed in chunks of rows whose working memory is about `neurovox.utils.memory.chunk_bytes()`
(`chunk_mb=` or `NEUROVOX_CHUNK_MB`); only the frames (125 Hz: 8x fewer rows than 1 kHz raw, float32)
are held whole. Causal mode streams the chunks through `CausalHighGamma`: bit-for-bit the in-memory
result. Offline mode processes each chunk of whole frames with `offline_margin_samples` extra
samples on both sides (the band-pass + notch and envelope low-pass impulse responses down to 1e-9
of their peak, plus `HILBERT_MARGIN_S`) and keeps the chunk's own frames; a chunk holds at least
three margins of rows, so a budget below that is exceeded. The Hilbert transform is global (its
kernel decays as 1/t, and the whole-signal FFT wraps the recording's end onto its start), so the
chunked frames are not bit-exact. Measured on a 120 s synthetic raw recording (16 channels, 60 Hz
mains) and on white noise, as max |chunked - whole| / RMS of the channel's frames: default 20 Hz
envelope low-pass 3e-4 for frames at least 1 s from the recording's ends (1e-4 beyond 5 s), no
low-pass 1e-3, log envelope 7e-4 (log units); the first and last 0.5 s, edge transients in both
versions, differ by up to 0.3 (0.95 in log units). tests/test_chunked.py asserts < 1e-3.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.fft
import scipy.signal as ss

from neurovox.dsp import SAMPLE_RATE_HZ
from neurovox.errors import ConfigError, DataError
from neurovox.io.lazy import is_lazy
from neurovox.io.recording import Recording
from neurovox.preprocess.config import HighGammaConfig
from neurovox.preprocess.reference import (
    Reference, design_sos, detect_line_noise_hz, frame_average, frame_starts, make_reference,
)
from neurovox.utils.check import validate_type
from neurovox.utils.memory import chunk_bytes, format_bytes

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


def _envelope_frames(raw: np.ndarray, starts: np.ndarray, reference: Reference, cfg: HighGammaConfig,
                     sos: np.ndarray, sos_env: np.ndarray | None) -> np.ndarray:
    """Zero-phase band-pass + Hilbert envelope (+ zero-phase low-pass) of `raw` (n_samples, n_in_channels),
    averaged over the frames delimited by `starts` (n_frames + 1,), in blocks of output channels.

    Returns float64 frames, shape (n_frames, n_out_channels).
    """
    n = raw.shape[0]
    refs = reference.group_refs(raw) if reference.mode == "average" else None
    n_fft = scipy.fft.next_fast_len(n, real=True)
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
    return out


def _offline_filters(sfreq_hz: float, cfg: HighGammaConfig, line_hz: float) -> tuple[np.ndarray, np.ndarray | None]:
    sos = design_sos(sfreq_hz, cfg.band_low_hz, cfg.band_high_hz, cfg.filter_order, line_hz, cfg.notch_q)
    sos_env = (ss.butter(2, cfg.envelope_lowpass_hz, btype="lowpass", fs=sfreq_hz, output="sos")
               if 0 < cfg.envelope_lowpass_hz < sfreq_hz / 2 else None)
    return sos, sos_env


def _offline_frames(raw: np.ndarray, sfreq_hz: float, reference: Reference, cfg: HighGammaConfig,
                    line_hz: float) -> np.ndarray:
    """Offline frames of a whole in-memory raw array, float64 (n_frames, n_out_channels)."""
    sos, sos_env = _offline_filters(sfreq_hz, cfg, line_hz)
    out = _envelope_frames(raw, frame_starts(raw.shape[0], sfreq_hz, cfg.frame_rate_hz), reference, cfg, sos, sos_env)
    if cfg.log_envelope:
        out = np.log(np.maximum(out, LOG_FLOOR))
    return out


# ------------------------------------------------------------------------------------ chunked (on-disk) input
IMPULSE_REL_TOL = 1e-9    # an impulse response has ended once |h| stays below this fraction of its peak
HILBERT_MARGIN_S = 2.0    # s, extra margin for the Hilbert transform's 1/t tail (see the module docstring)


def impulse_response_samples(sos: np.ndarray, rel_tol: float = IMPULSE_REL_TOL, max_samples: int = 1 << 22) -> int:
    """Length (samples) of the impulse response of a sos cascade until |h| stays below `rel_tol` x its peak."""
    n = 1 << 12
    while True:
        impulse = np.zeros(n)
        impulse[0] = 1.0
        h = np.abs(ss.sosfilt(sos, impulse))
        above = np.flatnonzero(h > rel_tol * h.max())
        last = int(above[-1]) + 1 if len(above) else 1
        if last < n // 2 or n >= max_samples:
            return last
        n *= 2


def offline_margin_samples(sfreq_hz: float, cfg: HighGammaConfig, line_hz: float) -> int:
    """Samples of context a chunk needs on each side for offline frames to match the whole-signal result.

    The band-pass (with its notches) and the envelope low-pass are applied forward and backward, so
    an edge disturbs each of them for one impulse-response length; the Hilbert transform adds a
    slowly decaying 1/t term, covered by `HILBERT_MARGIN_S`.
    """
    sos, sos_env = _offline_filters(sfreq_hz, cfg, line_hz)
    margin = impulse_response_samples(sos) + int(round(HILBERT_MARGIN_S * sfreq_hz))
    if sos_env is not None:
        margin += impulse_response_samples(sos_env)
    return margin


def offline_bytes_per_row(n_in: int, itemsize: int, reference: Reference, cfg: HighGammaConfig) -> int:
    """Working memory (bytes) per raw row of the offline path: the raw rows, the group references and, for
    each of `n_jobs` channel blocks, about 10 float64 values per channel (filtered signal, complex analytic
    signal and FFT buffers, envelope)."""
    n_groups = len(reference.members) if reference.mode == "average" else 0
    return n_in * itemsize + 8 * n_groups + cfg.n_jobs * min(cfg.block_channels, reference.n_out) * 10 * 8


def _offline_frames_chunked(neural: Any, sfreq_hz: float, reference: Reference, cfg: HighGammaConfig,
                            line_hz: float, budget_bytes: int) -> np.ndarray:
    """Offline frames of a LazyNeural, chunk by chunk with margins; float32 (n_frames, n_out_channels)."""
    sos, sos_env = _offline_filters(sfreq_hz, cfg, line_hz)
    n = neural.shape[0]
    starts = frame_starts(n, sfreq_hz, cfg.frame_rate_hz)
    n_frames = len(starts) - 1
    margin = offline_margin_samples(sfreq_hz, cfg, line_hz)
    per_row = offline_bytes_per_row(neural.shape[1], neural.dtype.itemsize, reference, cfg)
    # rows in a chunk, margins included; at least one margin of new rows, so margins cost at most 2/3 of the work
    rows = max(budget_bytes // per_row - 2 * margin, margin, 1)
    frames_per_chunk = max(1, int(rows * cfg.frame_rate_hz / sfreq_hz))
    out = np.empty((n_frames, reference.n_out), dtype=np.float32)
    for k0 in range(0, n_frames, frames_per_chunk):
        k1 = min(k0 + frames_per_chunk, n_frames)
        lo, hi = max(0, int(starts[k0]) - margin), min(n, int(starts[k1]) + margin)
        frames = _envelope_frames(neural[lo:hi], starts[k0:k1 + 1] - lo, reference, cfg, sos, sos_env)
        if cfg.log_envelope:
            frames = np.log(np.maximum(frames, LOG_FLOOR))
        out[k0:k1] = frames
    return out


def _causal_frames(neural: Any, hg: CausalHighGamma, n_rows: int) -> np.ndarray:
    """Stream `neural` (ndarray or LazyNeural) through `hg` in blocks of `n_rows` rows; float32 frames."""
    n = neural.shape[0]
    out = np.empty((len(frame_starts(n, hg.sfreq_hz, hg.cfg.frame_rate_hz)) - 1, hg.n_channels), dtype=np.float32)
    k = 0
    for s in range(0, n, n_rows):
        part = hg.process(neural[s: s + n_rows])
        out[k: k + len(part)] = part
        k += len(part)
    assert k == len(out), (k, len(out))
    return out


def causal_bytes_per_row(n_in: int, itemsize: int, reference: Reference) -> int:
    """Working memory (bytes) per raw row of the causal path: the raw rows and about 6 float64 values per
    output channel (re-referenced signal, band-passed, rectified, envelope and their filter copies)."""
    return n_in * itemsize + 6 * 8 * reference.n_out


def _normalise(frames: np.ndarray, mask: np.ndarray, clip_sd: float, block_rows: int = 4096) -> np.ndarray:
    """Per-channel z-score against the frames in `mask` (float64 statistics) and clipping, float32 out.

    Works by blocks of rows (elementwise: the same bits as on the whole array) to avoid float64 copies
    of all the frames; float32 `frames` (a buffer of our own) are overwritten in place.
    """
    base = frames[mask].astype(np.float64)
    mean = base.mean(axis=0)
    std = base.std(axis=0)
    del base
    std = np.where(std > 1e-12 * max(np.abs(mean).max(), 1e-30), std, 1.0)
    out = frames if frames.dtype == np.float32 else np.empty(frames.shape, dtype=np.float32)
    for r in range(0, len(frames), block_rows):
        z = (frames[r: r + block_rows].astype(np.float64) - mean) / std
        if clip_sd > 0:
            z = np.clip(z, -clip_sd, clip_sd)
        out[r: r + block_rows] = z
    return out


def baseline_frame_mask(trials, n_frames: int, frame_rate_hz: float, start_s: float, stop_s: float,
                        rows: np.ndarray | None = None) -> np.ndarray:
    """Frames lying wholly inside [onset + start_s, onset + stop_s] of some trial (of the trial rows `rows`,
    default all), shape (n_frames,) bool."""
    mask = np.zeros(n_frames, dtype=bool)
    onsets = trials["onset_s"].to_numpy(float)
    for onset in (onsets if rows is None else onsets[np.asarray(rows, dtype=np.int64)]):
        a = int(np.ceil((onset + start_s) * frame_rate_hz - 1e-9))
        b = int(np.floor((onset + stop_s) * frame_rate_hz + 1e-9))
        mask[max(a, 0): max(min(b, n_frames), 0)] = True
    return mask


def training_baseline_mask(trials, n_frames: int, cfg: HighGammaConfig, where: str = "") -> tuple[np.ndarray, str]:
    """Baseline frames whose statistics z-score the high gamma, and which trials they pool (for the notes).

    Statistics for normalisation come from training data only: with `cfg.baseline_split` = a split scheme,
    the baselines of that split's test trials are left out, and so is every frame of its test span (the
    baseline of a training trial can fall in the tail of a preceding test trial). Decoders trained on the
    output should then use the same split (`split.scheme`, `split.fold`, `split.n_folds`). "all" pools every
    trial (the published pipelines' habit: the test trials' statistics reach the training data).
    """
    if cfg.baseline_split == "all":
        return (baseline_frame_mask(trials, n_frames, cfg.frame_rate_hz, cfg.baseline_start_s, cfg.baseline_stop_s),
                f"all {len(trials)} trials")
    from neurovox.preprocess.splits import split_trials

    try:
        split = split_trials(trials, n_frames, cfg.baseline_split, cfg.baseline_fold, cfg.baseline_n_folds,
                             frame_rate_hz=cfg.frame_rate_hz, where=where)
    except (DataError, ConfigError) as exc:
        # A recording too small for the split (a few trials, a task with one trial) cannot be decoded under it
        # either; its preprocessing still works, and the notes say that every trial was pooled. (Decoders
        # re-normalise with their training frames anyway: `Normalizer`.)
        mask = baseline_frame_mask(trials, n_frames, cfg.frame_rate_hz, cfg.baseline_start_s, cfg.baseline_stop_s)
        return mask, (f"all {len(trials)} trials: the {cfg.baseline_split} split of high_gamma.baseline_split cannot "
                      f"be made here ({str(exc).split('. ')[0]}); set it to the split your decoders use")
    rows = np.setdiff1d(np.arange(len(trials)), split.test_trials)
    mask = baseline_frame_mask(trials, n_frames, cfg.frame_rate_hz, cfg.baseline_start_s, cfg.baseline_stop_s, rows)
    mask &= ~split.test_frame_mask
    fold = "" if split.scheme == "flinker" else f" fold {split.fold}/{split.n_folds}"
    return mask, (f"the {len(rows)} trials outside the test set of the {split.scheme}{fold} split "
                  f"({len(split.test_trials)} test trials left out)")


def resample_audio(audio: np.ndarray, sfreq_hz: float, target_hz: float = SAMPLE_RATE_HZ) -> np.ndarray:
    """Polyphase resampling (scipy.signal.resample_poly) to `target_hz`, float32."""
    if sfreq_hz == target_hz:
        return np.asarray(audio, dtype=np.float32)
    from fractions import Fraction

    r = Fraction(target_hz).limit_denominator(100_000) / Fraction(sfreq_hz).limit_denominator(100_000)
    return ss.resample_poly(np.asarray(audio, dtype=np.float64), r.numerator, r.denominator).astype(np.float32)


def audio_resample_note(sfreq_hz: float) -> str:
    return (f"audio resampled from {sfreq_hz:g} Hz to {SAMPLE_RATE_HZ} Hz (polyphase, scipy.signal.resample_poly)"
            + (" and low-passed at 8 kHz" if sfreq_hz > SAMPLE_RATE_HZ else ""))


def resolve_line_noise(rec: Recording, cfg: HighGammaConfig, reference: Reference) -> tuple[float, str]:
    """Mains frequency to notch and a note saying where it came from."""
    if cfg.line_noise_hz > 0:
        return cfg.line_noise_hz, f"notch {cfg.line_noise_hz:g} Hz harmonics (config)"
    if cfg.line_noise_hz < 0:
        return 0.0, "no line-noise notch (config)"
    # detect on the raw good channels: the common reference would cancel most of a shared mains signal
    n = min(rec.n_samples, int(60 * rec.neural_sfreq_hz))
    good = rec.good_mask if rec.good_mask.any() else np.ones(rec.n_channels, bool)
    if is_lazy(rec.neural):  # a few channels at a time, so the 60 s read stays within one chunk's memory
        cols = np.flatnonzero(good)
        step = max(1, int(chunk_bytes() // (48 * n)))  # ~6 float64 copies per channel in welch
        line_hz, peak_db = detect_line_noise_hz(None, rec.neural_sfreq_hz, psd_blocks=(
            rec.neural[:n, cols[i: i + step]].astype(np.float64) for i in range(0, len(cols), step)))
    else:
        x = rec.neural[:n][:, good].astype(np.float64)
        line_hz, peak_db = detect_line_noise_hz(x, rec.neural_sfreq_hz)
    if line_hz:
        return line_hz, f"notch {line_hz:g} Hz harmonics (auto-detected, peak {peak_db:.1f} dB above neighbours)"
    return 0.0, f"no line-noise notch (no 50/60 Hz peak found; largest {peak_db:.1f} dB)"


def extract_high_gamma(rec: Recording, cfg: HighGammaConfig | None = None, *,
                       chunk_mb: float | None = None) -> Recording:
    """High-gamma envelope frames from a raw recording.

    Parameters
    ----------
    rec : Recording
        `neural_kind="raw"`, shape (n_samples, n_channels) in volts, with audio on the same clock.
        A `LazyNeural` array (left on disk by the reader) is processed in chunks (module docstring).
    cfg : HighGammaConfig
        Band, notch, offline/causal mode, frame rate, log, z-score and clipping settings.
    chunk_mb : float, optional
        Working memory of one chunk for on-disk arrays, MiB (default: `NEUROVOX_CHUNK_MB`, else
        min(256 MiB, available memory / 16)). Not used for in-memory arrays.

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
    lazy = is_lazy(rec.neural)
    budget = chunk_bytes(chunk_mb) if lazy else 0
    if cfg.causal:  # float32 frames, log (if any) applied by the streaming class
        hg = CausalHighGamma(rec.neural_sfreq_hz, reference, cfg, line_hz)
        block = max(1, int(cfg.block_s * rec.neural_sfreq_hz))
        if lazy:
            block = min(block, max(1, budget // causal_bytes_per_row(rec.n_channels, rec.neural.dtype.itemsize,
                                                                      reference)))
        frames = _causal_frames(rec.neural, hg, block)
    elif lazy:      # float32 frames
        frames = _offline_frames_chunked(rec.neural, rec.neural_sfreq_hz, reference, cfg, line_hz, budget)
    else:           # float64 frames
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
    if rec.audio_sfreq_hz != SAMPLE_RATE_HZ:
        notes.append(audio_resample_note(rec.audio_sfreq_hz))
    unit = "log V" if cfg.log_envelope else rec.neural_unit
    if lazy:
        notes.append(f"raw data streamed from disk in chunks of {format_bytes(budget)} working memory")
    if cfg.zscore == "baseline":
        mask, pooled = training_baseline_mask(rec.trials, n_frames, cfg, where)
        if mask.sum() < 2:
            raise DataError(f"no pre-stimulus baseline frames in {where} ({cfg.baseline_start_s}..{cfg.baseline_stop_s} s "
                            "before each onset fall outside the recording). Use zscore='none' and normalise "
                            "with training-split statistics (neurovox.preprocess.Normalizer).")
        frames = _normalise(frames, mask, cfg.clip_sd)
        unit = "z (baseline)"
        notes.append(f"z-scored against {int(mask.sum())} pre-stimulus baseline frames "
                     f"({cfg.baseline_start_s * 1e3:g}..{cfg.baseline_stop_s * 1e3:g} ms) of {pooled}, "
                     f"clipped at +-{cfg.clip_sd:g} sd")
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
    out = rec.replace(neural=frames.astype(np.float32, copy=False), neural_sfreq_hz=cfg.frame_rate_hz,
                      neural_kind="high_gamma", audio=audio, audio_sfreq_hz=float(SAMPLE_RATE_HZ), channels=reference.channels.copy(),
                      trials=trials, extras={}, neural_unit=unit)
    out.meta.notes = list(meta.notes) + notes
    return out
