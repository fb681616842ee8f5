"""The neural side of a simulated participant: an encoding model from speech to high gamma, its
noise, bad channels, and the raw voltage that carries it.

Encoding model of electrode c (frames at 125 Hz, feature F = `speech_feature` of the clean speech):

    P_c(t)   = sum_k w_ck F_k(t) / z_c,  w_ck = Gaussian over mel bin k (centre mu_c, SD sigma_c), sum_k w_ck = 1,
               z_c = 99th percentile of the smoothed sum, so speech peaks reach ~1
    s_c(t)   = a_c * g(t) * (G * P_c)(t - lag_c)       G: symmetric Gaussian in time; g: per-trial gain
    hg_c(t)  = b_c + s_c(t) + n_c(t)                    b_c = 1 (baseline), n_c: noise

lag_c < 0 means the electrode leads the audio (sensorimotor), lag_c > 0 that it follows
(auditory). The noise n_c = common-mode pink + own pink (1/f power) + white, scaled per channel so
that var(s_c) / var(n_c) = 10^(snr_c / 10) exactly over the recording. Tuning centres, widths,
leads and site kinds come from spatially smooth random fields over the contact positions.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from scipy import fft as sfft
from scipy.ndimage import gaussian_filter1d
from scipy.special import ndtr

from neurovox import dsp
from neurovox.simulate.config import SimulateConfig
from neurovox.simulate.layouts import Layout

N_MELS = dsp.N_MELS
FLAT_LEVEL = 0.01      # a dead channel's envelope, relative to the baseline
NOISY_EXTRA_DB = 30.0
PEAK_PERCENTILE = 99.0  # the tuned feature is scaled so this percentile is 1 (response peaks ~ amplitude)  # a noisy channel's noise exceeds the stated SNR's noise by this much


@dataclass
class Tuning:
    """Per-electrode parameters of the encoding model, each (n_channels,)."""

    sensorimotor: np.ndarray   # bool: True = sensorimotor (leads), False = auditory (follows)
    lag_s: np.ndarray          # response delay relative to the audio (s); negative = leads
    centre_mel: np.ndarray     # centre of the spectral tuning (mel bin, 0-79)
    width_mel: np.ndarray      # SD of the spectral tuning (mel bins)
    amplitude: np.ndarray      # response amplitude (multiples of the baseline at full feature level)
    snr_db: np.ndarray         # stated SNR of each channel (dB)

    def weights(self) -> np.ndarray:
        """Spectral weights, shape (n_channels, 80), each row summing to 1."""
        k = np.arange(N_MELS)
        w = np.exp(-0.5 * ((k[None] - self.centre_mel[:, None]) / self.width_mel[:, None]) ** 2)
        return w / w.sum(axis=1, keepdims=True)


def smooth_fields(xyz_m: np.ndarray, n_fields: int, length_m: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian-process samples (squared-exponential kernel over 3-D distance), shape (n_fields, n_channels),
    each standardised to mean 0, SD 1 over the channels."""
    d2 = ((xyz_m[:, None, :] - xyz_m[None, :, :]) ** 2).sum(-1)
    cov = np.exp(-0.5 * d2 / length_m**2) + 1e-6 * np.eye(len(xyz_m))
    vals, vecs = np.linalg.eigh(cov)
    root = vecs * np.sqrt(np.clip(vals, 0, None))
    f = rng.standard_normal((n_fields, len(xyz_m))) @ root.T
    return (f - f.mean(1, keepdims=True)) / (f.std(1, keepdims=True) + 1e-12)


def make_tuning(layout: Layout, cfg: SimulateConfig, rng: np.random.Generator) -> Tuning:
    """Spatially smooth tunings: a dorsal-ventral gradient separates sensorimotor from auditory sites."""
    xyz = layout.xyz_m
    f = smooth_fields(xyz, 5, cfg.spatial_length_mm * 1e-3, rng)
    axis = xyz[:, 2] if layout.name == "seeg" else -xyz[:, 1]   # superior / dorsal (grid row 0 on top)
    axis = (axis - axis.mean()) / (axis.std() + 1e-12)
    score = 1.5 * axis + f[0]
    n = len(xyz)
    n_sm = int(round(cfg.sensorimotor_fraction * n))
    sensorimotor = np.zeros(n, bool)
    sensorimotor[np.argsort(-score, kind="stable")[:n_sm]] = True
    u_centre, u_width, u_lag, u_amp = (ndtr(x) for x in f[1:])
    centre = 6.0 + 64.0 * u_centre
    width = cfg.tuning_width_min_mel + (cfg.tuning_width_max_mel - cfg.tuning_width_min_mel) * u_width
    lead = cfg.lead_min_s + (cfg.lead_max_s - cfg.lead_min_s) * u_lag
    aud = cfg.auditory_lag_s + cfg.auditory_lag_sd_s * np.clip(f[3], -2.5, 2.5)
    lag = np.where(sensorimotor, -lead, aud)
    snr = cfg.snr_db + rng.uniform(-cfg.snr_spread_db, cfg.snr_spread_db, n)
    return Tuning(sensorimotor, lag, centre, width, 1.0 + 2.0 * u_amp, snr)


def shift_frames(x: np.ndarray, shift_frames: np.ndarray) -> np.ndarray:
    """y[t, c] = x[t - shift_c, c] with linear interpolation (fractional shifts), zeros outside.

    x : (n_frames, n_channels); shift_frames : (n_channels,), positive = later.
    """
    n = x.shape[0]
    src = np.arange(n)[:, None] - shift_frames[None, :]
    i0 = np.floor(src).astype(int)
    w = (src - i0).astype(x.dtype)
    cols = np.arange(x.shape[1])[None, :]
    xp = np.vstack([x, np.zeros((1, x.shape[1]), x.dtype)])  # index n -> zero
    ok0 = (i0 >= 0) & (i0 < n)
    ok1 = (i0 + 1 >= 0) & (i0 + 1 < n)
    a = xp[np.where(ok0, i0, n), cols]
    b = xp[np.where(ok1, i0 + 1, n), cols]
    return a * (1 - w) + b * w


def frame_gain(segments_s: np.ndarray, trial_gain: np.ndarray, n_frames: int, frame_rate_hz: float) -> np.ndarray:
    """Per-frame gain (n_frames,): each trial's gain over its segment, smoothed over 0.1 s."""
    t = np.arange(n_frames) / frame_rate_hz
    idx = np.clip(np.searchsorted(segments_s[:, 1], t, side="right"), 0, len(trial_gain) - 1)
    return gaussian_filter1d(trial_gain[idx], 0.1 * frame_rate_hz, mode="nearest")


def encode(feature: np.ndarray, tuning: Tuning, gain: np.ndarray, frame_rate_hz: float, temporal_sd_s: float) -> np.ndarray:
    """Noiseless response s (n_frames, n_channels) of every electrode to the feature (n_frames, 80)."""
    p = feature @ tuning.weights().T.astype(np.float32)
    p = gaussian_filter1d(p, temporal_sd_s * frame_rate_hz, axis=0, mode="constant")
    p /= np.maximum(np.percentile(p, PEAK_PERCENTILE, axis=0, keepdims=True), 1e-6)  # speech peaks -> ~1
    s = shift_frames(p, tuning.lag_s * frame_rate_hz)
    return (s * gain[:, None] * tuning.amplitude[None, :]).astype(np.float32)


def colored_noise(n_samples: int, n_channels: int, exponent: float, rng: np.random.Generator,
                  sfreq_hz: float, fmin_hz: float) -> np.ndarray:
    """Gaussian noise with power ~ 1/f^exponent above fmin_hz (flat below), unit SD per channel,
    shape (n_samples, n_channels), float32."""
    shape = np.maximum(sfft.rfftfreq(sfft.next_fast_len(n_samples, real=True), 1 / sfreq_hz), fmin_hz) ** (-exponent / 2)
    shape[0] = 0.0
    return shaped_noise(n_samples, n_channels, shape, rng)


def shaped_noise(n_samples: int, n_channels: int, amplitude: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise whose amplitude spectrum is `amplitude` (over the rfft bins of
    next_fast_len(n_samples)), cut to n_samples, unit SD per channel, shape (n_samples, n_channels), float32."""
    n_fft = sfft.next_fast_len(n_samples, real=True)
    n_bins = n_fft // 2 + 1
    assert amplitude.shape == (n_bins,)
    spec = np.empty((n_bins, n_channels), np.complex64)
    spec.real = rng.standard_normal((n_bins, n_channels), dtype=np.float32)
    spec.imag = rng.standard_normal((n_bins, n_channels), dtype=np.float32)
    spec *= amplitude.astype(np.float32)[:, None]
    x = sfft.irfft(spec, n=n_fft, axis=0)[:n_samples]
    x -= x.mean(axis=0, keepdims=True)
    return x / x.std(axis=0, keepdims=True)


def mixed_noise(n_frames: int, n_ch: int, cfg: SimulateConfig, rng: np.random.Generator,
                frame_rate_hz: float) -> np.ndarray:
    """Zero-mean background of each channel (n_frames, n_ch) float32: a common pink component (weighted
    0.8-1.2 per channel), the channel's own pink noise and white noise, mixed by `cfg`'s fractions."""
    common = colored_noise(n_frames, 1, 1.0, rng, frame_rate_hz, 0.05)
    own = colored_noise(n_frames, n_ch, 1.0, rng, frame_rate_hz, 0.05)
    white = rng.standard_normal((n_frames, n_ch)).astype(np.float32)
    weight = rng.uniform(0.8, 1.2, n_ch).astype(np.float32)
    white_fraction = max(0.0, 1.0 - cfg.pink_fraction - cfg.common_fraction)
    noise = (np.sqrt(cfg.common_fraction) * common * weight + np.sqrt(cfg.pink_fraction) * own
             + np.sqrt(white_fraction) * white)
    noise -= noise.mean(axis=0, keepdims=True)
    return noise


def make_noise(signal: np.ndarray, snr_db: np.ndarray, cfg: SimulateConfig, rng: np.random.Generator,
               frame_rate_hz: float) -> np.ndarray:
    """Noise (n_frames, n_channels) with var(signal_c) / var(noise_c) = 10^(snr_db_c / 10) exactly."""
    noise = mixed_noise(*signal.shape, cfg, rng, frame_rate_hz)
    target_var = signal.var(axis=0, dtype=np.float64) / 10 ** (snr_db / 10)
    return (noise * np.sqrt(target_var / noise.var(axis=0, dtype=np.float64))).astype(np.float32)


def choose_bad(n_channels: int, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """Indices of bad channels (sorted) and their kind ("flat" or "noisy"), at least one."""
    n_bad = max(1, int(round(fraction * n_channels)))
    idx = np.sort(rng.choice(n_channels, n_bad, replace=False))
    kinds = ["flat" if i % 2 == 0 else "noisy" for i in range(n_bad)]
    return idx, [kinds[j] for j in rng.permutation(n_bad)]


def apply_bad(hg: np.ndarray, noise: np.ndarray, bad_idx: np.ndarray, bad_kind: list[str],
              rng: np.random.Generator) -> np.ndarray:
    """Turn the observed envelope of bad channels flat (dead contact) or very noisy (in place)."""
    for i, kind in zip(bad_idx, bad_kind):
        if kind == "flat":
            hg[:, i] = FLAT_LEVEL * (1.0 + 1e-3 * rng.standard_normal(hg.shape[0]))
        else:
            hg[:, i] += noise[:, i] * (10 ** (NOISY_EXTRA_DB / 20) - 1.0)
    return hg


def frame_index(n_samples: int, sfreq_hz: float, frame_rate_hz: float, n_frames: int) -> np.ndarray:
    """Frame of every sample, shape (n_samples,) int64: sample j belongs to frame
    floor(j * frame_rate_hz / sfreq_hz), i.e. frame i covers the time span [i / rate, (i + 1) / rate)
    (the framing of `neurovox.preprocess`). Exact rational arithmetic; clipped to n_frames - 1."""
    r = Fraction(frame_rate_hz).limit_denominator(10_000) / Fraction(sfreq_hz).limit_denominator(10_000)
    idx = (np.arange(n_samples, dtype=np.int64) * r.numerator) // r.denominator
    return np.minimum(idx, n_frames - 1)


def analytic_amplitude(x: np.ndarray) -> np.ndarray:
    """|x + i H(x)| of each column of x (n_samples, n_channels), float32: the Hilbert envelope,
    computed with one rfft / irfft pair (float32 -> complex64, half the memory of scipy.signal.hilbert)."""
    n = x.shape[0]
    n_fft = sfft.next_fast_len(n, real=True)
    spec = sfft.rfft(x, n=n_fft, axis=0)
    spec[0] = 0.0
    if n_fft % 2 == 0:
        spec[-1] = 0.0
    spec *= -1j                                      # H: -i on positive frequencies
    hx = sfft.irfft(spec, n=n_fft, axis=0)[:n]
    return np.hypot(x, hx).astype(np.float32)


def make_raw(modulator: np.ndarray, cfg: SimulateConfig, rng: np.random.Generator, frame_rate_hz: float,
             bad_idx: np.ndarray, bad_kind: list[str], chunk_channels: int = 16,
             hg_envelope_out: np.ndarray | None = None, hg_component_out: np.ndarray | None = None) -> np.ndarray:
    """Raw voltage (n_raw, n_channels) in volts: a 70-170 Hz carrier whose amplitude follows the
    envelope `modulator` (n_frames, n_channels, >= 0, 1 = baseline), on a 1/f^2 background (part of it
    common to all channels), plus white amplifier noise and mains line noise with 2 harmonics.

    hg_envelope_out : ndarray, shape (n_frames, n_channels), float32, optional
        Filled (in place) with the high-gamma amplitude really present in the voltage, in volts: the
        Hilbert amplitude of the noiseless high-gamma component `raw_hg_uv * carrier * env` (before the
        background, white and line noise are added), averaged over the frames of `frame_index`. It
        contains the carrier's own random amplitude fluctuation, which no extractor can remove, so it
        is the target for scoring a preprocessing pipeline (`GroundTruth.raw_hg_envelope`). Flat bad
        channels (whose voltage is replaced) get 0. Computing it draws no random numbers.
    hg_component_out : ndarray, shape (n_raw, n_channels), float32, optional
        Filled (in place) with that noiseless high-gamma component itself, in volts, at the raw
        rate (flat bad channels: 0), so the ground truth can be put through a pipeline's own
        band-pass and envelope smoothing (`neurovox.simulate.truth`). Draws no random numbers.
    """
    n_frames, n_ch = modulator.shape
    fs = cfg.raw_sfreq_hz
    n_raw = int(round(n_frames / frame_rate_hz * fs))
    t = np.arange(n_raw) / fs
    pos = np.minimum(t * frame_rate_hz, n_frames - 1)
    i0 = np.minimum(pos.astype(int), n_frames - 2)
    w = (pos - i0).astype(np.float32)[:, None]
    freqs = sfft.rfftfreq(sfft.next_fast_len(n_raw, real=True), 1 / fs)
    lo, hi = cfg.hg_band_hz
    edge = 5.0  # Hz, raised-cosine band edges
    band = np.clip(np.minimum((freqs - lo + edge) / (2 * edge), (hi + edge - freqs) / (2 * edge)), 0, 1)
    band = (0.5 - 0.5 * np.cos(np.pi * band)).astype(np.float32)
    common_bg = colored_noise(n_raw, 1, 2.0, rng, fs, 1.0)
    phase = rng.uniform(0, 2 * np.pi)
    line_gain = rng.uniform(0.5, 1.5, n_ch)
    out = np.empty((n_raw, n_ch), np.float32)
    if hg_envelope_out is not None:
        if hg_envelope_out.shape != (n_frames, n_ch):
            raise ValueError(f"hg_envelope_out must have shape {(n_frames, n_ch)}, got {hg_envelope_out.shape}.")
        frame_of = frame_index(n_raw, fs, frame_rate_hz, n_frames)
        frame_first = np.flatnonzero(np.r_[True, np.diff(frame_of) > 0])      # first sample of each frame
        frame_has = frame_of[frame_first]                                   # frames holding >= 1 sample
        frame_count = np.diff(np.r_[frame_first, n_raw])
        hg_envelope_out[:] = 0.0
    if hg_component_out is not None and hg_component_out.shape != (n_raw, n_ch):
        raise ValueError(f"hg_component_out must have shape {(n_raw, n_ch)}, got {hg_component_out.shape}.")
    for c0 in range(0, n_ch, chunk_channels):
        cs = slice(c0, min(n_ch, c0 + chunk_channels))
        k = cs.stop - cs.start
        carrier = shaped_noise(n_raw, k, band, rng)
        env = modulator[i0, cs] * (1 - w) + modulator[i0 + 1, cs] * w
        own_bg = colored_noise(n_raw, k, 2.0, rng, fs, 1.0)
        bg = np.sqrt(1 - cfg.common_fraction) * own_bg + np.sqrt(cfg.common_fraction) * common_bg
        white = rng.standard_normal((n_raw, k)).astype(np.float32)
        hg = cfg.raw_hg_uv * carrier * env                                            # microvolts
        out[:, cs] = 1e-6 * (hg + cfg.raw_background_uv * bg + cfg.raw_white_uv * white)
        if hg_component_out is not None:
            hg_component_out[:, cs] = 1e-6 * hg
        if hg_envelope_out is not None:
            amp = analytic_amplitude(hg)
            sums = np.add.reduceat(amp, frame_first, axis=0, dtype=np.float64)
            hg_envelope_out[frame_has, cs] = (1e-6 * sums / frame_count[:, None]).astype(np.float32)
    line = sum(cfg.line_noise_uv / h**1.5 * np.sin(2 * np.pi * h * cfg.line_freq_hz * t + h * phase)
               for h in (1, 2, 3) if h * cfg.line_freq_hz < fs / 2)
    out += (1e-6 * line[:, None] * line_gain[None, :]).astype(np.float32)
    for i, kind in zip(bad_idx, bad_kind):
        if kind == "flat":
            out[:, i] = 1e-8 * rng.standard_normal(n_raw)
            if hg_envelope_out is not None:
                hg_envelope_out[:, i] = 0.0          # the contact is dead: no high gamma in its voltage
            if hg_component_out is not None:
                hg_component_out[:, i] = 0.0
        else:
            out[:, i] += 2e-4 * rng.standard_normal(n_raw).astype(np.float32)
    return out
