"""Re-referencing and filter design shared by the offline and causal high-gamma paths.

Re-referencing (per sample, so it is causal by construction):
- ECoG: common average over the GOOD channels of each grid (`group`; one grid if groups are empty).
- sEEG: shaft-wise average over the good contacts of each shaft (`group`), or bipolar pairs of
  neighbouring contacts on a shaft (a pair touching a bad contact is flagged bad).
Bad channels never enter a reference; they stay in the output, flagged bad.

Filters are designed with scipy.signal (Butterworth band-pass and `iirnotch` line-noise notches)
as second-order sections, so one cascade serves `sosfiltfilt` (offline) and `sosfilt` with carried
state (causal).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import pandas as pd
import scipy.signal as ss

from neurovox.errors import DataError

LINE_CANDIDATES_HZ = (50.0, 60.0)
REF_BLOCK_SAMPLES = 1 << 16  # samples per block when averaging the reference
LINE_DETECT_MIN_DB = 6.0  # dB, a mains peak must stand this far above its neighbourhood to be notched


@dataclass
class Reference:
    """A linear re-reference: each output channel is one input channel minus a reference.

    mode "average": out[:, c] = x[:, c] - mean(x[:, members[group_of[c]]]) (no subtraction if the
    group has no good member); mode "bipolar": out[:, k] = x[:, pairs[k, 0]] - x[:, pairs[k, 1]].
    """

    mode: str
    channels: pd.DataFrame                 # output channel table
    group_of: np.ndarray | None = None     # (n_channels,) group index of each channel
    members: list[np.ndarray] | None = None  # good-channel indices of each group
    pairs: np.ndarray | None = None        # (n_out, 2) bipolar pairs
    n_in: int = 0                          # number of input channels

    @property
    def n_out(self) -> int:
        return len(self.channels)

    def group_refs(self, x: np.ndarray) -> np.ndarray:
        """Reference signal of each group, shape (n_samples, n_groups), float64."""
        refs = np.zeros((x.shape[0], len(self.members)), dtype=np.float64)
        for t0 in range(0, x.shape[0], REF_BLOCK_SAMPLES):  # time blocks bound the float64 copy
            rows = slice(t0, t0 + REF_BLOCK_SAMPLES)
            for g, idx in enumerate(self.members):
                if len(idx):
                    # contiguous copy, then a per-row reduction: identical bits for any number of rows
                    refs[rows, g] = np.ascontiguousarray(x[rows][:, idx], dtype=np.float64).sum(axis=1) / len(idx)
        return refs

    def apply(self, x: np.ndarray, cols: np.ndarray | None = None, refs: np.ndarray | None = None) -> np.ndarray:
        """Re-referenced signal of output channels `cols` (default: all), shape (n_samples, len(cols)), float64."""
        cols = np.arange(self.n_out) if cols is None else cols
        if self.mode == "bipolar":
            p = self.pairs[cols]
            return x[:, p[:, 0]].astype(np.float64) - x[:, p[:, 1]].astype(np.float64)
        if self.mode == "none":
            return x[:, cols].astype(np.float64)
        refs = self.group_refs(x) if refs is None else refs
        return x[:, cols].astype(np.float64) - refs[:, self.group_of[cols]]


def make_reference(channels: pd.DataFrame, ecog_reference: str = "car",
                   seeg_reference: str = "shaft_average") -> Reference:
    """Build the re-reference for a channel table (see module docstring)."""
    types = channels["type"].astype(str).to_numpy()
    groups = channels["group"].astype(str).to_numpy()
    bad = channels["bad"].to_numpy(bool)
    is_seeg = types == "seeg"
    if is_seeg.all() and seeg_reference == "bipolar":
        pairs, names, bads, rows = [], [], [], []
        for g in dict.fromkeys(groups):
            idx = np.flatnonzero(groups == g)
            for a, b in zip(idx[:-1], idx[1:]):
                pairs.append((a, b))
                names.append(f"{channels['name'].iloc[a]}-{channels['name'].iloc[b]}")
                bads.append(bool(bad[a] or bad[b]))
                rows.append(a)
        if not pairs:
            raise DataError("bipolar sEEG reference needs at least two contacts on one shaft (channel `group`); "
                            "none was found. Use seeg_reference='shaft_average' or fill the group column.")
        out = channels.iloc[rows].reset_index(drop=True).copy()
        out["name"] = names
        out["bad"] = bads
        return Reference("bipolar", out, pairs=np.asarray(pairs, dtype=np.int64), n_in=len(channels))
    if not is_seeg.any() and ecog_reference == "none":
        return Reference("none", channels.reset_index(drop=True).copy(), n_in=len(channels))
    # average reference per (type, group): CAR for grids, shaft average for sEEG
    keys = [f"{t}|{g}" for t, g in zip(types, groups)]
    uniq = list(dict.fromkeys(keys))
    group_of = np.array([uniq.index(k) for k in keys], dtype=np.int64)
    members = [np.flatnonzero((group_of == gi) & ~bad) for gi in range(len(uniq))]
    return Reference("average", channels.reset_index(drop=True).copy(), group_of=group_of, members=members,
                     n_in=len(channels))


def detect_line_noise_hz(x: np.ndarray | None, sfreq_hz: float, max_s: float = 60.0, *,
                         psd_blocks: Iterable[np.ndarray] | None = None) -> tuple[float, float]:
    """Mains frequency (50 or 60 Hz) from the spectrum, or 0.0 if neither peak stands out.

    Parameters
    ----------
    x : ndarray, shape (n_samples, n_channels)
        Re-referenced signal (good channels).
    psd_blocks : iterable of ndarray, shape (n_samples, n_block_channels), optional
        The channels in blocks instead of `x` (the median spectrum over channels is the same), so a
        long span of many channels need not be in memory at once.
    Returns
    -------
    line_hz, peak_db : the detected frequency (0.0 = none) and its peak height over the neighbourhood.
    """
    spectra = []
    for xb in ([x] if psd_blocks is None else psd_blocks):
        n = min(xb.shape[0], int(max_s * sfreq_hz))
        nperseg = int(min(n, round(sfreq_hz)))  # ~1 Hz resolution
        freqs, pxx = ss.welch(xb[:n], fs=sfreq_hz, nperseg=nperseg, axis=0)
        spectra.append(pxx)
    pxx = spectra[0] if len(spectra) == 1 else np.concatenate(spectra, axis=1)
    p = np.median(pxx, axis=1) if pxx.ndim == 2 else pxx
    df = freqs[1] - freqs[0]
    scores = {}
    for f0 in LINE_CANDIDATES_HZ:
        best = -np.inf
        for h in np.arange(f0, sfreq_hz / 2 - 5, f0)[:4]:
            k = int(round(h / df))
            near = np.r_[k - int(6 / df): k - int(2 / df) + 1, k + int(2 / df): k + int(6 / df) + 1]
            near = near[(near >= 0) & (near < len(p))]
            if len(near) == 0:
                continue
            peak = p[max(k - 1, 0): k + 2].max()
            best = max(best, 10 * np.log10(peak / max(np.median(p[near]), 1e-300)))
        scores[f0] = best
    f_best = max(scores, key=scores.get)
    return (f_best if scores[f_best] >= LINE_DETECT_MIN_DB else 0.0), float(scores[f_best])


def design_sos(sfreq_hz: float, band_low_hz: float, band_high_hz: float, order: int,
               line_hz: float = 0.0, notch_q: float = 30.0) -> np.ndarray:
    """Notches at the mains harmonics in and next to the band, then a Butterworth band-pass, as sos (n_sections, 6)."""
    nyq = sfreq_hz / 2
    if band_high_hz >= nyq:
        raise DataError(f"high-gamma band {band_low_hz:g}-{band_high_hz:g} Hz needs a sampling rate above "
                        f"{2 * band_high_hz:g} Hz, but the recording is at {sfreq_hz:g} Hz. "
                        "Lower band_high_hz or use a recording with a higher rate.")
    sections = []
    if line_hz > 0:
        for h in np.arange(line_hz, nyq, line_hz):
            if band_low_hz - 10 <= h <= band_high_hz + 10:
                b, a = ss.iirnotch(h, notch_q, fs=sfreq_hz)
                sections.append(ss.tf2sos(b, a))
    sections.append(ss.butter(order, [band_low_hz, band_high_hz], btype="bandpass", fs=sfreq_hz, output="sos"))
    return np.concatenate(sections, axis=0)


def frame_starts(n_samples: int, sfreq_hz: float, frame_rate_hz: float, first_frame: int = 0) -> np.ndarray:
    """First sample of each complete frame from `first_frame` on, and the end of the last one.

    Frame i covers the samples j with i <= j * frame_rate / sfreq < i + 1, i.e. the time span
    [i / frame_rate, (i + 1) / frame_rate); at 1024 Hz and 125 Hz frames hold 8 or 9 samples.
    Exact rational arithmetic, so every path (offline, causal, chunked) agrees on the boundaries.

    Returns
    -------
    starts : ndarray, shape (n_complete - first_frame + 1,), int64 (just [start of first_frame] when
        no frame from `first_frame` on is complete yet).
    """
    r = Fraction(sfreq_hz).limit_denominator(10_000) / Fraction(frame_rate_hz).limit_denominator(10_000)
    p, q = r.numerator, r.denominator
    n_frames = (n_samples * q) // p
    i = np.arange(first_frame, max(n_frames, first_frame) + 1, dtype=np.int64)
    return -((-i * p) // q)  # ceil(i * p / q)


def frame_average(env: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Mean of `env` (n_samples, n_channels) over the frames delimited by `starts` (n_frames + 1,)."""
    if len(starts) < 2:
        return np.zeros((0, env.shape[1]), dtype=env.dtype)
    seg = env[starts[0]: starts[-1]]
    sums = np.add.reduceat(seg, starts[:-1] - starts[0], axis=0)
    return sums / np.diff(starts)[:, None]
