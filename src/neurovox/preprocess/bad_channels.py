"""Bad channels found automatically: flat, noisy and spiky contacts (issue 16).

The readers already mark channels bad that are non-finite or exactly constant
(`neurovox.io.checks`). This module finds the subtler ones. After a `HIGHPASS_HZ` high-pass (DC
offsets and slow drift are not noise) it computes, per channel, of the signal and of its
frame-to-frame difference:

- the log variance (ln of unit^2): far below the neighbours = flat (a dead contact), far above =
  noisy;
- the excess kurtosis (0 for Gaussian noise): far above the neighbours = spiky (sparse large
  transients).

A channel is flagged only when the signal and its difference agree: the envelope of a
speech-responsive contact has large, heavy-tailed but smooth swings (high variance and kurtosis of
the signal only), and the raw high-gamma carrier it modulates is abrupt but small (high kurtosis of
the difference only), whereas broadband noise, a dead contact and spikes show in both.

Each statistic is the median over consecutive `SEGMENT_S` segments of the recording (of a
deterministic strided subsample of at most `MAX_FRAMES` frames), so a channel is bad when it is bad
most of the time; an artefact burst across a patch of contacts now and then is an event, not a bad
channel.

Each channel is compared with the median of its neighbours: its 8 neighbours on the electrode grid
(same group and type, Chebyshev distance <= the group's contact pitch, so the macro and micro
contacts of a hybrid grid are compared among themselves), or, for channels without a grid position
(sEEG) or with fewer than `MIN_NEIGHBOURS` good neighbours, all good channels of the same type. The
difference is divided by the spread of the statistic over the good channels of the type (1.4826 x
the median absolute deviation: a robust SD) to give a robust z. Channels already marked bad are
reported as such and never serve as a reference.

Works on raw voltage and on the high-gamma envelope alike (both (n_frames, n_channels)).

    report = find_bad_channels(rec.neural, rec.channels, rec.neural_sfreq_hz)
    report.found                                      # {"G12": "noisy", ...}
    channels = with_bad_channels(rec.channels, report)

`neurovox info` prints the report. Decoder training uses `with_bad_channels` to mark the found
channels bad in the channel table, so that the layout's `good` mask (`neurovox.decoders.layout`)
excludes them like the file's own bad channels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.signal as ss
import scipy.stats

from neurovox.errors import DataError
from neurovox.io.lazy import is_lazy
from neurovox.utils.memory import chunk_bytes

REASONS = ("flat", "noisy", "spiky")
# Robust SDs from the neighbours beyond which a channel is flagged. Bad channels are outliers by
# orders of magnitude: in simulated recordings a dead contact (x 0 + 1e-3 of its SD) has z < -9, a
# channel with 1 % of its frames spiking 20 SDs z > 60, one with 10x its SD of added noise z 6-20
# (only 3.7-5 in the linear-encoding sEEG envelope, whose channel levels spread over a factor of
# ~5). Their clean channels (3 seeds x both encodings x grid8x8 / hybrid128 / sEEG x raw / high
# gamma x 43 s to 12 min) stay within |z| 2.3 of ln variance and z 0.8 of kurtosis (signal or
# difference alone reach 4.6 and 8.6). 5 leaves margin on both sides and is the usual cut for
# robust z.
THRESHOLD_Z = 5.0
FLAT_RELATIVE_VARIANCE = 1e-12   # variance below this x the type's median variance: flat whatever the z
MAX_FRAMES = 100_000             # frames used at most (strided beyond): 100 000 x 256 ch x 2 float32 = 200 MB
MIN_FRAMES = 100                 # fewer frames than this give no usable kurtosis: refuse
SEGMENT_S = 5.0                  # statistics are medians over consecutive segments this long (s) ...
MIN_SEGMENT_FRAMES = 500         # ... of at least this many (subsampled) frames
HIGHPASS_HZ = 1.0                # 4th-order Butterworth high-pass before the statistics
MIN_NEIGHBOURS = 3               # fewer good grid neighbours than this: compare with all channels of the type
MIN_REFERENCE = 3                # fewer good channels of a type than this: its channels are not judged
MAD_TO_SD = 1.4826               # median absolute deviation x this = SD for Gaussian data
# Floors of the robust SD, so that near-identical channels (simulations) do not turn a small
# difference into a large z: 0.3 in ln variance is a 16 % difference in SD (so THRESHOLD_Z = 5
# never flags less than a 2.1-fold SD); 0.5 in excess kurtosis is 2 standard errors of a Gaussian
# segment's kurtosis over 500 frames.
MIN_SD = {"log_var": 0.3, "diff_log_var": 0.3, "kurtosis": 0.5, "diff_kurtosis": 0.5}


@dataclass(frozen=True)
class BadChannelReport:
    """What `find_bad_channels` found, one entry per channel (channel-table order).

    names : tuple of str
    reason : tuple of str
        "flat", "noisy" or "spiky" for a channel found bad here; "" for a good channel and for one
        already marked bad in the channel table (see `already_bad`).
    bad : ndarray (n_channels,) bool
        Already bad or found bad: the channels to exclude.
    already_bad : ndarray (n_channels,) bool
        Marked bad in the channel table before the check.
    log_var_z, kurtosis_z : ndarray (n_channels,) float64
        Robust z of ln variance and of excess kurtosis where the signal and its frame-to-frame
        difference agree: the one nearer 0 when both have the same sign, else 0. Each z is
        (statistic - median over the reference channels) / robust SD of the statistic over the good
        channels of the type; NaN where the type has fewer than `MIN_REFERENCE` good channels.
    log_var, diff_log_var : ndarray (n_channels,) float64
        ln of the variance of the high-passed signal and of its frame-to-frame difference,
        ln(unit^2) (unit of the neural data, e.g. V).
    kurtosis, diff_kurtosis : ndarray (n_channels,) float64
        Excess kurtosis of the same two (0 for Gaussian noise).
    reference : tuple of str
        "grid" (compared with its grid neighbours), "type" (with all good channels of its type) or
        "none" (too few good channels of the type to judge).
    threshold_z : float
        log_var_z < -threshold_z is flat, > threshold_z noisy; kurtosis_z > threshold_z spiky.
    n_frames_used : int
        Frames the statistics were computed on (after the strided subsample).
    """

    names: tuple[str, ...]
    reason: tuple[str, ...]
    bad: np.ndarray
    already_bad: np.ndarray
    log_var_z: np.ndarray
    kurtosis_z: np.ndarray
    log_var: np.ndarray
    diff_log_var: np.ndarray
    kurtosis: np.ndarray
    diff_kurtosis: np.ndarray
    reference: tuple[str, ...]
    threshold_z: float
    n_frames_used: int

    @property
    def found(self) -> dict[str, str]:
        """{name: reason} of the channels found bad here (not those already bad), in channel order."""
        return {n: r for n, r in zip(self.names, self.reason) if r}

    def found_details(self) -> list[dict[str, Any]]:
        """JSON-ready rows of the channels found bad: name, reason, log_var_z, kurtosis_z (2 decimals)."""
        return [{"name": self.names[i], "reason": r, "log_var_z": round(float(self.log_var_z[i]), 2),
                 "kurtosis_z": round(float(self.kurtosis_z[i]), 2)} for i, r in enumerate(self.reason) if r]


def find_bad_channels(neural: Any, channels: pd.DataFrame, frame_rate_hz: float, *,
                      threshold_z: float = THRESHOLD_Z, max_frames: int = MAX_FRAMES) -> BadChannelReport:
    """Find flat, noisy and spiky channels by comparison with their neighbours (see the module doc).

    Parameters
    ----------
    neural : ndarray or LazyNeural, shape (n_frames, n_channels)
        Raw voltage (V) or high-gamma envelope (any unit); finite.
    channels : DataFrame
        The Recording's channel table (columns name, type, bad, row, col; group optional), one row
        per column of `neural`.
    frame_rate_hz : float
        Sampling rate of `neural` (Hz).
    threshold_z : float
        Robust SDs from the neighbours beyond which a channel is flagged (see `THRESHOLD_Z`).
    max_frames : int
        Longer recordings are subsampled with a fixed stride (every k-th frame after the
        high-pass) to at most this many frames.

    Returns
    -------
    BadChannelReport
        Reason "flat" (log_var_z < -threshold_z, or variance < `FLAT_RELATIVE_VARIANCE` x the
        type's median), else "spiky" (kurtosis_z > threshold_z), else "noisy" (log_var_z >
        threshold_z): spikes raise the variance too, so "spiky" is the more specific reason.

    Raises
    ------
    DataError
        If the shapes disagree, the rate is too low, the recording is shorter than `MIN_FRAMES`
        frames or holds NaN/Inf.
    """
    _check_inputs(neural, channels, frame_rate_hz)
    stats, n_used = _statistics(neural, frame_rate_hz, max_frames)
    already = channels["bad"].to_numpy(bool)
    types = channels["type"].astype(str).to_numpy()
    neighbours = grid_neighbours(channels)
    # Two passes: the second leaves the channels the first found out of the references, so that a
    # dead or noisy contact does not drag its neighbours' medians (or the type's spread) with it.
    found = np.zeros(len(already), bool)
    for _ in range(2):
        refs, pools, reference = _references(types, neighbours, already | found)
        z = {k: _robust_z(v, refs, pools, MIN_SD[k]) for k, v in stats.items()}
        log_var_z = _agreeing(z["log_var"], z["diff_log_var"])
        kurtosis_z = _agreeing(z["kurtosis"], z["diff_kurtosis"])
        flat = _flat(np.exp(stats["log_var"]), pools)
        reason = ["" if b else _reason(f, zv, zk, threshold_z)
                  for b, f, zv, zk in zip(already, flat, log_var_z, kurtosis_z)]
        found = np.array([bool(r) for r in reason], dtype=bool)
    arrays = [already | found, already.copy(), log_var_z, kurtosis_z, stats["log_var"], stats["diff_log_var"],
              stats["kurtosis"], stats["diff_kurtosis"]]
    for a in arrays:
        a.setflags(write=False)
    return BadChannelReport(tuple(channels["name"].astype(str)), tuple(reason), *arrays, tuple(reference),
                            float(threshold_z), n_used)


def with_bad_channels(channels: pd.DataFrame, report: BadChannelReport) -> pd.DataFrame:
    """A copy of `channels` with the channels found bad in `report` marked bad (the others unchanged).

    Raises DataError if `report` was computed for another channel table (the names differ).
    """
    names = tuple(channels["name"].astype(str))
    if names != report.names:
        raise DataError(f"The bad-channel report is for {len(report.names)} channels ({', '.join(report.names[:3])}, "
                        f"...) but the channel table has {len(names)} ({', '.join(names[:3])}, ...); run "
                        "find_bad_channels on this recording.")
    out = channels.copy()
    out["bad"] = out["bad"].to_numpy(bool) | report.bad
    return out


def grid_neighbours(channels: pd.DataFrame) -> list[np.ndarray]:
    """Indices of each channel's grid neighbours (bad or not), one int array per channel.

    Neighbours share the channel's group and type and lie within Chebyshev distance `pitch` of its
    (row, col), where `pitch` is the smallest such distance between two contacts of the group (1 on
    a regular grid, 2 for the macro contacts of a hybrid grid, whose micro contacts sit between
    them). Channels without a (row, col) (row or col < 0, e.g. sEEG) get an empty array.
    """
    rows, cols = _int_column(channels, "row"), _int_column(channels, "col")
    types = channels["type"].astype(str).to_numpy()
    groups = channels["group"].astype(str).to_numpy() if "group" in channels else np.full(len(channels), "")
    placed = (rows >= 0) & (cols >= 0)
    out = [np.zeros(0, dtype=int) for _ in range(len(channels))]
    for t, g in dict.fromkeys(zip(types[placed], groups[placed])):
        members = np.flatnonzero(placed & (types == t) & (groups == g))
        if len(members) < 2:
            continue
        dist = np.maximum(np.abs(rows[members, None] - rows[None, members]),
                          np.abs(cols[members, None] - cols[None, members]))
        pitch = dist[dist > 0].min()
        for k, i in enumerate(members):
            out[i] = members[(dist[k] > 0) & (dist[k] <= pitch)]
    return out


# ------------------------------------------------------------------------------------ helpers
def _references(types: np.ndarray, neighbours: list[np.ndarray],
                exclude: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """Per channel: the channels its statistics are compared with (its good grid neighbours, else the
    other good channels of its type; none if the type has fewer than `MIN_REFERENCE`), the good
    channels of its type (for the spread and the flat test), and which reference it got."""
    refs, pools, reference = [], [], []
    for i, t in enumerate(types):
        pool = np.flatnonzero((types == t) & ~exclude)
        ref, kind = neighbours[i][~exclude[neighbours[i]]], "grid"
        if len(ref) < MIN_NEIGHBOURS:
            ref, kind = pool[pool != i], "type"
        if len(pool) < MIN_REFERENCE:
            ref, kind = np.zeros(0, dtype=int), "none"
        refs.append(ref)
        pools.append(pool)
        reference.append(kind)
    return refs, pools, reference


def _robust_z(stat: np.ndarray, refs: list[np.ndarray], pools: list[np.ndarray], min_sd: float) -> np.ndarray:
    """(n_channels,) (stat - median of the reference) / max(robust SD over the pool, min_sd); NaN if no reference."""
    z = np.full(len(stat), np.nan)
    for i, (ref, pool) in enumerate(zip(refs, pools)):
        if len(ref):
            sd = max(MAD_TO_SD * float(np.median(np.abs(stat[pool] - np.median(stat[pool])))), min_sd)
            z[i] = (stat[i] - np.median(stat[ref])) / sd
    return z


def _agreeing(z_signal: np.ndarray, z_diff: np.ndarray) -> np.ndarray:
    """The z of the signal and of its difference where they agree: the one nearer 0 if both have the
    same sign, else 0 (NaN where either is NaN)."""
    same = np.sign(z_signal) == np.sign(z_diff)
    out = np.where(same, np.sign(z_signal) * np.minimum(np.abs(z_signal), np.abs(z_diff)), 0.0)
    return np.where(np.isnan(z_signal) | np.isnan(z_diff), np.nan, out)


def _flat(var: np.ndarray, pools: list[np.ndarray]) -> np.ndarray:
    """(n_channels,) bool: variance below `FLAT_RELATIVE_VARIANCE` x the median of the good channels of
    its type (whatever the z: a type of near-dead channels has a tiny spread too)."""
    return np.array([len(pool) > 0 and v <= FLAT_RELATIVE_VARIANCE * np.median(var[pool])
                     for v, pool in zip(var, pools)], dtype=bool)


def _reason(flat: bool, log_var_z: float, kurtosis_z: float, threshold_z: float) -> str:
    if flat or log_var_z < -threshold_z:
        return "flat"
    if kurtosis_z > threshold_z:
        return "spiky"
    if log_var_z > threshold_z:
        return "noisy"
    return ""


def _int_column(channels: pd.DataFrame, name: str) -> np.ndarray:
    if name not in channels:
        return np.full(len(channels), -1)
    values = channels[name].to_numpy()
    return np.where(pd.isna(values), -1, values).astype(int)


def _check_inputs(neural: Any, channels: pd.DataFrame, frame_rate_hz: float) -> None:
    shape = getattr(neural, "shape", None)
    if shape is None or len(shape) != 2:
        raise DataError(f"find_bad_channels needs neural data of shape (n_frames, n_channels), got shape {shape}.")
    n_frames, n_ch = shape
    if n_ch != len(channels):
        raise DataError(f"The neural data have {n_ch} channels but the channel table has {len(channels)} rows; "
                        "pass the channel table of the same recording.")
    missing = [c for c in ("name", "type", "bad") if c not in channels]
    if missing:
        raise DataError(f"The channel table lacks the columns {missing}; build it with "
                        "neurovox.io.make_channel_table.")
    if not np.isfinite(frame_rate_hz) or frame_rate_hz <= 4 * HIGHPASS_HZ:
        raise DataError(f"frame_rate_hz must be above {4 * HIGHPASS_HZ:g} Hz (for the {HIGHPASS_HZ:g} Hz "
                        f"high-pass), got {frame_rate_hz!r}; pass the recording's neural_sfreq_hz.")
    if n_frames < MIN_FRAMES:
        raise DataError(f"Bad channels are judged from at least {MIN_FRAMES} frames, but the recording has "
                        f"{n_frames}; check a longer recording.")


def _statistics(neural: Any, frame_rate_hz: float, max_frames: int) -> tuple[dict[str, np.ndarray], int]:
    """({"log_var", "diff_log_var", "kurtosis", "diff_kurtosis"}: (n_channels,) float64 each, frames
    used): medians over consecutive `SEGMENT_S` segments (one segment if shorter than two)."""
    x, dx, stride = _highpassed_subsample(neural, frame_rate_hz, max_frames)
    n_used, n_ch = x.shape
    seg_frames = max(MIN_SEGMENT_FRAMES, int(SEGMENT_S * frame_rate_hz / stride))
    edges = np.linspace(0, n_used, max(1, n_used // seg_frames) + 1).astype(int)
    keys = ("log_var", "diff_log_var", "kurtosis", "diff_kurtosis")
    per_segment = {k: np.zeros((len(edges) - 1, n_ch)) for k in keys}
    tiny = np.finfo(np.float64).tiny                      # ln(0) -> ln(tiny) = -708: finite, far below any channel
    for s, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
        for c0 in range(0, n_ch, 32):                     # float64, 32 channels at a time (bounded memory)
            cs = slice(c0, c0 + 32)
            for name, y in (("", x[a:b, cs]), ("diff_", dx[a:b, cs])):
                y = y.astype(np.float64)
                var = y.var(axis=0)
                per_segment[name + "log_var"][s, cs] = np.log(np.maximum(var, tiny))
                moving = var > 0                          # a constant's kurtosis is undefined: left 0
                per_segment[name + "kurtosis"][s, cs][moving] = scipy.stats.kurtosis(y[:, moving], axis=0)
    return {k: np.median(v, axis=0) for k, v in per_segment.items()}, n_used


def _highpassed_subsample(neural: Any, frame_rate_hz: float,
                          max_frames: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(x, dx, stride): `neural` high-passed block by block (the filter state carried over), keeping
    every `stride`-th frame so that n_used <= max_frames; x (n_used, n_channels) float32 and dx, the
    same frames minus the frame before each (0 for the first frame)."""
    n_frames, n_ch = neural.shape
    stride = int(np.ceil(n_frames / max(1, max_frames)))
    sos = ss.butter(4, HIGHPASS_HZ, btype="highpass", fs=frame_rate_hz, output="sos")
    n_used = len(range(0, n_frames, stride))
    x = np.empty((n_used, n_ch), dtype=np.float32)
    dx = np.empty((n_used, n_ch), dtype=np.float32)
    block_frames = max(1, chunk_bytes() // (3 * 8 * n_ch))  # the block, its filtered copy and difference, float64
    zi, previous, n_out = None, None, 0
    for start in range(0, n_frames, block_frames):
        stop = min(n_frames, start + block_frames)
        block = np.asarray(neural.read(start, stop) if is_lazy(neural) else neural[start:stop], dtype=np.float64)
        if not np.isfinite(block).all():
            raise DataError(f"The neural data hold NaN/Inf (first in frames {start}-{stop}); read the recording with "
                            "nonfinite='mark_bad' or 'interpolate' (CLI: --nonfinite) before the bad-channel check.")
        if zi is None:                                    # steady state at the first frame: no onset transient
            zi = ss.sosfilt_zi(sos)[:, :, None] * block[0][None, None, :]
        filtered, zi = ss.sosfilt(sos, block, axis=0, zi=zi)
        diff = np.diff(filtered, axis=0, prepend=filtered[:1] if previous is None else previous)
        previous = filtered[-1:]
        keep = slice((-start) % stride, None, stride)     # global frames 0, stride, 2 * stride, ...
        n_keep = len(filtered[keep])
        x[n_out:n_out + n_keep], dx[n_out:n_out + n_keep] = filtered[keep], diff[keep]
        n_out += n_keep
    return x, dx, stride
