"""`Recording`: one participant's session, the only neural-data object in neurovox.

It carries the neural samples with their rate and kind, the microphone audio on the same clock,
the channel table, the trial table and the metadata, and validates all of it on construction.
Every reader returns one; every downstream stage works from one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from neurovox.errors import DataError
from neurovox.io.lazy import LazyNeural, is_lazy
from neurovox.utils.check import check_finite, check_option

NeuralKind = Literal["raw", "high_gamma"]
NEURAL_KINDS = ("raw", "high_gamma")
CHANNEL_TYPES = ("ecog", "seeg", "eeg", "misc")
CHANNEL_COLUMNS = ("name", "type", "bad", "row", "col", "x", "y", "z", "group")
TRIAL_COLUMNS = ("onset_s", "offset_s", "label", "task")


@dataclass
class RecordingMeta:
    """Who and what was recorded."""

    participant_id: str = "unknown"
    sex: Literal["F", "M", "unknown"] = "unknown"   # sets the default pitch range of the speech model
    hemisphere: Literal["left", "right", "both", "unknown"] = "unknown"
    grid_density: Literal["low", "hybrid", "seeg", "other", "unknown"] = "unknown"
    language: str = "unknown"                       # spoken language, ISO 639-1 ("en", "nl"): which recogniser applies
    source_format: str = "memory"                   # "flinker_hdf5", "swpd_nwb", "bids", "simulated", ...
    source_path: str = ""
    derived: list[str] = field(default_factory=list)  # what a reader computed because the file lacked it
    notes: list[str] = field(default_factory=list)


def make_channel_table(names: list[str], types: str | list[str] = "ecog", *, bad: list[bool] | None = None,
                       row: Any = None, col: Any = None, xyz: np.ndarray | None = None,
                       group: list[str] | None = None) -> pd.DataFrame:
    """Build a channel table with the standard columns.

    `row`/`col` are integer grid coordinates (-1 where unknown); `xyz` is (n_channels, 3) in metres
    (NaN where unknown); `group` names the grid or sEEG shaft of each contact.
    """
    n = len(names)
    types = [types] * n if isinstance(types, str) else list(types)
    xyz = np.full((n, 3), np.nan) if xyz is None else np.asarray(xyz, dtype=float)
    return pd.DataFrame({
        "name": [str(s) for s in names],
        "type": types,
        "bad": [False] * n if bad is None else [bool(b) for b in bad],
        "row": np.full(n, -1, dtype=int) if row is None else np.asarray(row, dtype=int),
        "col": np.full(n, -1, dtype=int) if col is None else np.asarray(col, dtype=int),
        "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2],
        "group": [""] * n if group is None else [str(g) for g in group],
    })


def make_trial_table(onset_s: Any, offset_s: Any, label: Any, task: Any = "task") -> pd.DataFrame:
    onset_s = np.asarray(onset_s, dtype=float)
    n = len(onset_s)
    task = [task] * n if isinstance(task, str) else list(task)
    return pd.DataFrame({"onset_s": onset_s, "offset_s": np.asarray(offset_s, dtype=float),
                         "label": [str(x) for x in label], "task": [str(t) for t in task]})


@dataclass
class Recording:
    """One participant's session.

    Parameters
    ----------
    neural : ndarray or LazyNeural, shape (n_samples, n_channels), float32
        Neural samples: raw voltage in volts (`neural_kind="raw"`) or a high-gamma envelope
        (`neural_kind="high_gamma"`, arbitrary units or z-scores). Readers leave a neural array
        larger than `neurovox.utils.memory.in_memory_limit_bytes()` on disk as a `LazyNeural`
        (read by rows; preprocessing streams it in chunks).
    neural_sfreq_hz : float
        Neural sampling rate (raw: e.g. 1024 Hz; high gamma: the frame rate, e.g. 125 Hz).
    neural_kind : {"raw", "high_gamma"}
    audio : ndarray, shape (n_audio_samples,), float32
        Microphone audio on the same clock (sample 0 of both is time 0), mono, in [-1, 1].
    audio_sfreq_hz : float
    channels : DataFrame
        One row per channel: name, type (ecog/seeg/...), bad, row, col (grid coordinates, -1 if
        unknown), x, y, z (metres, NaN if unknown), group (grid or shaft name).
    trials : DataFrame
        One row per trial: onset_s, offset_s (speech onset/offset in seconds), label (word), task.
    meta : RecordingMeta
    extras : dict of ndarray
        Format-specific arrays kept for round trips (e.g. Flinker formant/pitch tracks).
    """

    neural: np.ndarray | LazyNeural
    neural_sfreq_hz: float
    neural_kind: str
    audio: np.ndarray
    audio_sfreq_hz: float
    channels: pd.DataFrame
    trials: pd.DataFrame
    meta: RecordingMeta = field(default_factory=RecordingMeta)
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    neural_unit: str = "a.u."

    def __post_init__(self) -> None:
        if not is_lazy(self.neural):
            self.neural = np.asarray(self.neural)
        self.audio = np.asarray(self.audio)
        self.neural_sfreq_hz = float(self.neural_sfreq_hz)
        self.audio_sfreq_hz = float(self.audio_sfreq_hz)
        self.validate()

    # ---------------------------------------------------------------- validation
    def validate(self) -> None:
        """Raise DataError saying exactly what is wrong (shapes, values, clocks, trials)."""
        where = self.meta.source_path or "recording"
        check_option("neural_kind", self.neural_kind, NEURAL_KINDS, error=DataError)
        if self.neural.ndim != 2:
            raise DataError(f"neural data in {where} must be 2-D (n_samples, n_channels), got shape {self.neural.shape}.")
        if self.neural.shape[0] == 0 or self.neural.shape[1] == 0:
            raise DataError(f"neural data in {where} is empty: shape {self.neural.shape}.")
        if self.neural.shape[1] > self.neural.shape[0]:
            raise DataError(
                f"neural data in {where} has more channels than samples (shape {self.neural.shape}); "
                "it is probably transposed. Pass it as (n_samples, n_channels)."
            )
        hint = "Interpolate or mark those channels bad (neurovox.io.mark_nonfinite_bad) before use."
        if is_lazy(self.neural):   # float by construction; scanned once (readers have done it already)
            self.neural.check_finite("neural data", where=where, hint=hint)
        else:
            if not np.issubdtype(self.neural.dtype, np.floating):
                self.neural = self.neural.astype(np.float32)
            check_finite("neural data", self.neural, where=where, hint=hint)
        if self.audio.ndim == 2 and 1 in self.audio.shape:
            self.audio = self.audio.reshape(-1)
        if self.audio.ndim != 1:
            raise DataError(f"audio in {where} must be mono, shape (n_audio_samples,), got {self.audio.shape}. "
                            "Mix stereo down with neurovox.io.audio.to_mono.")
        if not np.issubdtype(self.audio.dtype, np.floating):
            self.audio = self.audio.astype(np.float32)
        check_finite("audio", self.audio, axis_names=("sample", ""), where=where)
        if self.neural_sfreq_hz <= 0 or self.audio_sfreq_hz <= 0:
            raise DataError(f"sampling rates must be positive, got neural {self.neural_sfreq_hz} Hz, audio {self.audio_sfreq_hz} Hz.")
        mismatch_s = abs(self.neural_duration_s - self.audio_duration_s)
        if mismatch_s > 1.0 / self.neural_sfreq_hz + 1e-9:
            raise DataError(
                f"audio and neural clocks disagree in {where}: neural lasts {self.neural_duration_s:.4f} s "
                f"({self.n_samples} samples at {self.neural_sfreq_hz:g} Hz) but audio lasts "
                f"{self.audio_duration_s:.4f} s ({self.audio.shape[0]} samples at {self.audio_sfreq_hz:g} Hz), "
                f"a difference of {mismatch_s * 1e3:.1f} ms (allowed: one neural frame, "
                f"{1e3 / self.neural_sfreq_hz:.1f} ms). Check both rates, or trim both streams to the common span."
            )
        self._validate_channels(where)
        self._validate_trials(where)

    def _validate_channels(self, where: str) -> None:
        ch = self.channels
        missing = [c for c in CHANNEL_COLUMNS if c not in ch.columns]
        if missing:
            raise DataError(f"channel table of {where} lacks columns {missing}; build it with make_channel_table().")
        if len(ch) != self.n_channels:
            raise DataError(f"channel table of {where} has {len(ch)} rows but the neural data has "
                            f"{self.n_channels} channels.")
        dup = ch["name"][ch["name"].duplicated()].tolist()
        if dup:
            raise DataError(f"channel names in {where} must be unique; duplicated: {dup[:5]}.")
        bad_types = sorted(set(ch["type"]) - set(CHANNEL_TYPES))
        if bad_types:
            raise DataError(f"channel types in {where} must be among {CHANNEL_TYPES}, got {bad_types}.")

    def _validate_trials(self, where: str) -> None:
        tr = self.trials
        missing = [c for c in TRIAL_COLUMNS if c not in tr.columns]
        if missing:
            raise DataError(f"trial table of {where} lacks columns {missing}; build it with make_trial_table().")
        if len(tr) == 0:
            raise DataError(f"trial table of {where} is empty: there is nothing to train or evaluate on. "
                            "Provide speech onsets/offsets (events) for the recording.")
        on, off = tr["onset_s"].to_numpy(float), tr["offset_s"].to_numpy(float)
        if not (np.isfinite(on).all() and np.isfinite(off).all()):
            i = int(np.flatnonzero(~(np.isfinite(on) & np.isfinite(off)))[0])
            raise DataError(f"trial {i} of {where} has a non-finite onset or offset ({on[i]}, {off[i]}).")
        bad = np.flatnonzero(off <= on)
        if len(bad):
            i = int(bad[0])
            raise DataError(f"trial {i} ({tr['label'].iloc[i]!r}) of {where} has offset {off[i]:.3f} s "
                            f"not after onset {on[i]:.3f} s ({len(bad)} such trials).")
        dur = self.duration_s
        out = np.flatnonzero((on < 0) | (off > dur + 1.0 / self.neural_sfreq_hz))
        if len(out):
            i = int(out[0])
            raise DataError(f"trial {i} ({tr['label'].iloc[i]!r}) of {where} spans {on[i]:.3f}-{off[i]:.3f} s, "
                            f"outside the recording (0-{dur:.3f} s); {len(out)} trials are out of range.")

    # ---------------------------------------------------------------- derived values
    @property
    def n_samples(self) -> int:
        return int(self.neural.shape[0])

    @property
    def n_channels(self) -> int:
        return int(self.neural.shape[1])

    @property
    def n_trials(self) -> int:
        return len(self.trials)

    @property
    def neural_duration_s(self) -> float:
        return self.n_samples / self.neural_sfreq_hz

    @property
    def audio_duration_s(self) -> float:
        return self.audio.shape[0] / self.audio_sfreq_hz

    @property
    def duration_s(self) -> float:
        return min(self.neural_duration_s, self.audio_duration_s)

    @property
    def ch_names(self) -> list[str]:
        return self.channels["name"].tolist()

    @property
    def ch_types(self) -> list[str]:
        return self.channels["type"].tolist()

    @property
    def bads(self) -> list[str]:
        return self.channels.loc[self.channels["bad"].astype(bool), "name"].tolist()

    @property
    def good_mask(self) -> np.ndarray:
        """Boolean mask of good channels, shape (n_channels,)."""
        return ~self.channels["bad"].to_numpy(bool)

    @property
    def tasks(self) -> list[str]:
        return list(dict.fromkeys(self.trials["task"].tolist()))

    def __repr__(self) -> str:
        types = "/".join(sorted(set(self.ch_types)))
        return (f"<Recording {self.meta.participant_id} | {self.n_channels} {types} ch ({len(self.bads)} bad) x "
                f"{self.n_samples} samples @ {self.neural_sfreq_hz:g} Hz {self.neural_kind}, "
                f"{self.duration_s:.1f} s, audio @ {self.audio_sfreq_hz:g} Hz, {self.n_trials} trials>")

    # ---------------------------------------------------------------- new objects
    def replace(self, **changes: Any) -> "Recording":
        """A validated copy with some fields replaced (the original is not modified)."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        fields["channels"] = self.channels.copy()
        fields["trials"] = self.trials.copy()
        fields["meta"] = dataclasses.replace(self.meta, derived=list(self.meta.derived), notes=list(self.meta.notes))
        fields["extras"] = dict(self.extras)
        fields.update(changes)
        return Recording(**fields)

    def audio_segment(self, tmin_s: float, tmax_s: float) -> np.ndarray:
        """Audio between two times in seconds, shape (n_audio_samples,)."""
        start = max(0, int(round(tmin_s * self.audio_sfreq_hz)))
        stop = min(self.audio.shape[0], int(round(tmax_s * self.audio_sfreq_hz)))
        return self.audio[start:stop]
