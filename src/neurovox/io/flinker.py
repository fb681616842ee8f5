"""Flinker-lab HDF5 files (Chen et al. 2024; public participant HB02, Mendeley fp4bv9gtwk v2).

Layout (T neural frames at 125 Hz, N trials; audio at 16 kHz on the same clock, 128 samples a frame):

=============================== ============ ==================================================
key                             shape        content
=============================== ============ ==================================================
ecog_alldataset                 (T, C)       high gamma, C = 64 (8x8) or 128 / 225 (hybrid)
wave_re_alldataset              (T*128, 1)   microphone audio
start_ind_re_valid_alldataset   (N,)         speech onsets, frames (0-based)
end_ind_re_valid_alldataset     (N,)         speech offsets, frames (optional: derived)
label_alldataset                (N,)         words (optional)
wave_re_spec_alldataset         (T, 256)     normalised dB spectrogram (optional)
wave_re_spec_amp_alldataset     (T, 256)     power spectrogram (optional)
formant_re_alldataset           (T, 6)       Praat formants (optional)
pitch_re_alldataset             (T,)         Praat pitch (optional)
intensity_re_alldataset         (T,)         intensity (optional)
noisesample_re_alldataset       (256,)       mean background-noise spectrum (optional)
TestNum_cum                     (1,)         number of test trials (optional)
=============================== ============ ==================================================

Only `ecog_alldataset`, `wave_re_alldataset` and `start_ind_re_valid_alldataset` are required.
Optional keys that exist are kept in `Recording.extras` under their own names (and written back);
the ones that are missing are listed in `meta.derived` for downstream stages to compute.

neurovox adds keys of its own when it writes (`task_alldataset`, `onset_s_alldataset`,
`offset_s_alldataset`, `channel_*_alldataset`) and metadata as root attributes; real files need
none of them.

Channel layouts when the file has no channel keys:

- 64 channels: low density 8x8 grid, channel i at row i // 8, col i % 8 (row-major).
- 225 channels: hybrid density, every position of a 15x15 grid row-major; the contacts on even
  (row, col) are the 64 macro contacts (group "macro"), the others micro (group "micro").
- 128 channels: hybrid density on the 15x15 grid; channels 0-63 are the macro contacts on the
  even (row, col) positions, row-major; channels 64-127 are micro contacts on the 64 inter-macro
  midpoints (row + col odd: halfway between two neighbouring macro contacts) nearest the grid
  centre (7, 7), ties broken row-major, assigned row-major (the simulator's `hybrid128` layout).
  This mapping is neurovox's convention: pass channel keys (or edit `rec.channels`) if yours differs.
- any other count: no grid position (row = col = -1), with a notice.

MATLAB v7.3 .mat files are HDF5 and load the same way; MATLAB stores arrays transposed, which
is detected from the audio/neural length relation and undone with a notice. MATLAB v5 .mat files
are read with scipy.

A neural array larger than `neurovox.utils.memory.in_memory_limit_bytes()` (or any, with
``lazy=True``) stays on disk as a `LazyNeural` (HDF5 only; a v5 .mat is always loaded whole).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from neurovox.errors import DataError, FormatError, NeurovoxError
from neurovox.io._common import decode_strings, describe_hdf5_error, file_kind
from neurovox.io.checks import check_contents
from neurovox.io.lazy import Hdf5Source, LazyNeural, is_lazy, processing_dtype
from neurovox.io.recording import Recording, RecordingMeta, make_channel_table, make_trial_table
from neurovox.utils.files import atomic_path
from neurovox.utils.memory import chunk_bytes, in_memory_limit_bytes

NEURAL_KEY = "ecog_alldataset"
AUDIO_KEY = "wave_re_alldataset"
ONSET_KEY = "start_ind_re_valid_alldataset"
OFFSET_KEY = "end_ind_re_valid_alldataset"
LABEL_KEY = "label_alldataset"
TASK_KEY = "task_alldataset"
REQUIRED_KEYS = (NEURAL_KEY, AUDIO_KEY, ONSET_KEY)
#: optional Flinker keys aligned with the neural frames (first axis T)
FRAME_KEYS = ("wave_re_spec_alldataset", "wave_re_spec_amp_alldataset", "formant_re_alldataset",
              "pitch_re_alldataset", "intensity_re_alldataset")
OTHER_KEYS = ("noisesample_re_alldataset", "TestNum_cum")
OPTIONAL_KEYS = FRAME_KEYS + OTHER_KEYS
#: how a downstream stage obtains each optional key when the file lacks it
HOW_DERIVED = {
    "wave_re_spec_alldataset": "dB spectrogram: computed from the audio (preprocess)",
    "wave_re_spec_amp_alldataset": "power spectrogram: computed from the audio (preprocess)",
    "formant_re_alldataset": "formants: Praat Burg on the audio (preprocess)",
    "pitch_re_alldataset": "pitch: Praat on the audio (preprocess)",
    "intensity_re_alldataset": "intensity: computed from the audio (preprocess)",
    "noisesample_re_alldataset": "noise spectrum: mean of pre-speech silence (preprocess)",
    "TestNum_cum": "test trials: the last 10 of each task (Flinker split)",
}
#: neurovox's own keys (exact round trips); readers of real files never need them
OWN_KEYS = ("onset_s_alldataset", "offset_s_alldataset", TASK_KEY, "channel_name_alldataset",
            "channel_type_alldataset", "channel_bad_alldataset", "channel_row_alldataset",
            "channel_col_alldataset", "channel_xyz_alldataset", "channel_group_alldataset")
DEFAULT_NEURAL_SFREQ_HZ = 125.0
DEFAULT_AUDIO_SFREQ_HZ = 16000.0
N_FLINKER_TASKS = 5
DEFAULT_OFFSET_S = 1.0   # derived speech duration when offsets are missing (capped by the next onset)
HYBRID_GRID = 15


# ------------------------------------------------------------------------------------ layouts
def flinker_channel_table(n_channels: int) -> tuple[pd.DataFrame, str, list[str]]:
    """Default channel table for a Flinker file with `n_channels` channels (layouts in the module doc).

    Returns
    -------
    channels : DataFrame
        Standard channel table (type "ecog", grid row/col, group "grid" / "macro" / "micro").
    grid_density : {"low", "hybrid", "other"}
    notices : list of str
    """
    if n_channels == 64:
        idx = np.arange(64)
        names = [f"G{i + 1:02d}" for i in idx]
        return make_channel_table(names, "ecog", row=idx // 8, col=idx % 8, group=["grid"] * 64), "low", []
    if n_channels in (128, HYBRID_GRID * HYBRID_GRID):
        positions = _hybrid_positions(n_channels)
        rows, cols = positions[:, 0], positions[:, 1]
        macro = (rows % 2 == 0) & (cols % 2 == 0)
        group = np.where(macro, "macro", "micro").tolist()
        names = [f"{'M' if m else 'm'}{r:02d}{c:02d}" for m, r, c in zip(macro, rows, cols)]
        return make_channel_table(names, "ecog", row=rows, col=cols, group=group), "hybrid", []
    names = [f"E{i + 1:03d}" for i in range(n_channels)]
    return make_channel_table(names, "ecog"), "other", [
        f"{n_channels} channels match no Flinker layout (64 low density, 128/225 hybrid): "
        "no grid positions assigned; grid decoders need channel_row/col keys, layout-free decoders work as is."
    ]


def _hybrid_positions(n_channels: int) -> np.ndarray:
    """(n_channels, 2) grid (row, col) of each channel of a hybrid 15x15 grid (see module doc)."""
    rr, cc = np.meshgrid(np.arange(HYBRID_GRID), np.arange(HYBRID_GRID), indexing="ij")
    allpos = np.stack([rr.ravel(), cc.ravel()], axis=1)            # row-major
    if n_channels == HYBRID_GRID * HYBRID_GRID:
        return allpos
    is_macro = (allpos[:, 0] % 2 == 0) & (allpos[:, 1] % 2 == 0)
    macro = allpos[is_macro]                                       # 64, row-major
    others = allpos[(allpos[:, 0] + allpos[:, 1]) % 2 == 1]       # midpoints between two macro contacts
    centre = (HYBRID_GRID - 1) / 2
    dist = (others[:, 0] - centre) ** 2 + (others[:, 1] - centre) ** 2
    order = np.lexsort((others[:, 1], others[:, 0], dist))       # by distance, then row, then col
    micro = others[np.sort(order[: n_channels - len(macro)])]     # back to row-major
    return np.concatenate([macro, micro])


# ------------------------------------------------------------------------------------ writing
def _str_array(values: list[str]) -> np.ndarray:
    return np.array([str(v) for v in values], dtype=object)


def write_flinker_hdf5(rec: Recording, path: str | os.PathLike) -> Path:
    """Write `rec` as a Flinker-layout HDF5 file (atomically); `read_flinker_hdf5` reads it back exactly.

    Parameters
    ----------
    rec : Recording
        Usually high gamma at 125 Hz with 16 kHz audio (the Flinker convention); other rates are
        stored in the file attributes and read back.
    path : path-like
        Output file (.h5 / .hdf5); an existing file is replaced.

    Returns
    -------
    path : Path
    """
    import h5py

    if not isinstance(rec, Recording):
        raise TypeError(f"rec must be a Recording, got {type(rec).__name__}.")
    path = Path(path)
    sfreq = rec.neural_sfreq_hz
    ch = rec.channels
    str_dt = h5py.string_dtype("utf-8")
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            _write_neural(f, rec.neural)
            f.create_dataset(AUDIO_KEY, data=rec.audio.reshape(-1, 1))
            on_s = rec.trials["onset_s"].to_numpy(np.float64)
            off_s = rec.trials["offset_s"].to_numpy(np.float64)
            f.create_dataset(ONSET_KEY, data=np.round(on_s * sfreq).astype(np.int64))
            f.create_dataset(OFFSET_KEY, data=np.round(off_s * sfreq).astype(np.int64))
            f.create_dataset(LABEL_KEY, data=_str_array(rec.trials["label"].tolist()), dtype=str_dt)
            f.create_dataset(TASK_KEY, data=_str_array(rec.trials["task"].tolist()), dtype=str_dt)
            f.create_dataset("onset_s_alldataset", data=on_s)
            f.create_dataset("offset_s_alldataset", data=off_s)
            f.create_dataset("channel_name_alldataset", data=_str_array(ch["name"].tolist()), dtype=str_dt)
            f.create_dataset("channel_type_alldataset", data=_str_array(ch["type"].tolist()), dtype=str_dt)
            f.create_dataset("channel_group_alldataset", data=_str_array(ch["group"].tolist()), dtype=str_dt)
            f.create_dataset("channel_bad_alldataset", data=ch["bad"].to_numpy(bool).astype(np.uint8))
            f.create_dataset("channel_row_alldataset", data=ch["row"].to_numpy(np.int64))
            f.create_dataset("channel_col_alldataset", data=ch["col"].to_numpy(np.int64))
            f.create_dataset("channel_xyz_alldataset", data=ch[["x", "y", "z"]].to_numpy(np.float64))
            for key, value in rec.extras.items():
                if key in REQUIRED_KEYS + OWN_KEYS + (OFFSET_KEY, LABEL_KEY):
                    continue
                value = np.asarray(value)
                if value.dtype.kind in "OUS":
                    f.create_dataset(key, data=_str_array(value.reshape(-1).tolist()), dtype=str_dt)
                elif value.dtype.kind in "fiub":
                    f.create_dataset(key, data=value)
                else:
                    raise DataError(f"extras[{key!r}] has dtype {value.dtype}, which cannot be stored in HDF5 by "
                                    "neurovox: convert it to numbers or strings.")
            m = rec.meta
            f.attrs.update({
                "neurovox_format": "flinker_hdf5", "participant_id": m.participant_id, "sex": m.sex,
                "hemisphere": m.hemisphere, "grid_density": m.grid_density, "language": m.language,
                "neural_kind": rec.neural_kind, "neural_unit": rec.neural_unit, "neural_sfreq_hz": sfreq, "audio_sfreq_hz": rec.audio_sfreq_hz,
                "derived": json.dumps(list(m.derived)), "notes": json.dumps(list(m.notes)),
            })
    return path


def _write_neural(f: Any, neural: np.ndarray | LazyNeural) -> None:
    """The neural dataset; a LazyNeural is copied by blocks of rows (never whole in memory)."""
    if not is_lazy(neural):
        f.create_dataset(NEURAL_KEY, data=neural)
        return
    ds = f.create_dataset(NEURAL_KEY, shape=neural.shape, dtype=neural.dtype)
    for start, rows in neural.iter_rows(neural.rows_for_bytes(chunk_bytes(), neural.dtype.itemsize)):
        ds[start: start + len(rows)] = rows


# ------------------------------------------------------------------------------------ reading
def _keep_on_disk(obj: Any, lazy: bool | None) -> bool:
    """Whether to leave the neural dataset `obj` on disk (see the module docstring)."""
    if lazy is False or obj.ndim != 2 or obj.dtype.kind not in "fiub":
        return False
    if lazy:
        return True
    return obj.size * processing_dtype(obj.dtype).itemsize > in_memory_limit_bytes()


def _load_hdf5(path: Path, lazy: bool | None = None) -> tuple[dict[str, Any], dict[str, Any], bool]:
    """All top-level datasets as arrays (the neural one maybe as a LazyNeural), the root attributes, and
    whether it is a MATLAB file."""
    import h5py

    arrays: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
        is_matlab = "#refs#" in f or any("MATLAB_class" in f[k].attrs for k in f if isinstance(f[k], h5py.Dataset))
        for key in f:
            obj = f[key]
            if not isinstance(obj, h5py.Dataset):
                continue
            mclass = obj.attrs.get("MATLAB_class", b"")
            mclass = mclass.decode() if isinstance(mclass, bytes) else str(mclass)
            if obj.dtype.kind == "O" and h5py.check_dtype(ref=obj.dtype) is not None:
                # MATLAB cell array: each element references a char array
                refs = obj[()].reshape(-1)
                arrays[key] = np.array(["".join(decode_strings(f[r][()], matlab_char=True)) for r in refs],
                                       dtype=object)
            elif mclass == "char":
                arrays[key] = np.array(decode_strings(obj[()], matlab_char=True), dtype=object)
            elif key == NEURAL_KEY and _keep_on_disk(obj, lazy):
                arrays[key] = LazyNeural(Hdf5Source(str(path), obj.name))
            elif obj.dtype.kind in "OSU":
                raw = np.asarray(obj[()], dtype=object)
                arrays[key] = np.array([v.decode("utf-8", errors="replace") if isinstance(v, bytes) else str(v)
                                        for v in raw.reshape(-1)], dtype=object).reshape(raw.shape)
            else:
                arrays[key] = obj[()]
    return arrays, attrs, is_matlab


def _load_mat5(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    from scipy.io import loadmat

    raw = loadmat(path, squeeze_me=False, chars_as_strings=True)
    arrays = {}
    for key, value in raw.items():
        if key.startswith("__"):
            continue
        value = np.asarray(value)
        if value.dtype.kind == "O":   # cell array of strings
            value = np.array([decode_strings(np.asarray(v).reshape(-1))[0] if np.size(v) else "" for v in
                              value.reshape(-1)], dtype=object)
        elif value.dtype.kind == "U":
            value = np.array([s.strip() for s in value.reshape(-1)], dtype=object)
        arrays[key] = value
    return arrays, {}


def _numeric(arrays: dict[str, Any], key: str, where: str) -> np.ndarray | LazyNeural:
    arr = arrays[key] if is_lazy(arrays[key]) else np.asarray(arrays[key])
    if arr.dtype.kind not in "fiub":
        raise FormatError(f"{key} in {where} must hold numbers, got dtype {arr.dtype}. "
                          "Re-export the file with numeric arrays.")
    return arr


def read_flinker_hdf5(path: str | os.PathLike, *, neural_sfreq_hz: float | None = None,
                      audio_sfreq_hz: float | None = None, participant_id: str | None = None,
                      nonfinite: str = "raise", lazy: bool | None = None) -> Recording:
    """Read a Flinker-lab HDF5 (.h5/.hdf5) or MATLAB (.mat v7.3 or v5) file.

    Parameters
    ----------
    path : path-like
    neural_sfreq_hz, audio_sfreq_hz : float, optional
        Override the rates (default: the file's attributes, else 125 Hz and 16 kHz).
    participant_id : str, optional
        Default: the file's attribute, else the file name without extension (e.g. "HB02").
    nonfinite : {"raise", "mark_bad", "interpolate"}
        What to do with NaN/Inf neural samples (see `neurovox.io.checks`).
    lazy : bool, optional
        Leave the neural array on disk as a `LazyNeural` (True), load it (False), or decide from its
        size (None: lazy above `neurovox.utils.memory.in_memory_limit_bytes()`). HDF5 files only.

    Returns
    -------
    rec : Recording
        `meta.derived` lists what downstream stages must compute (missing optional keys) or what
        the reader inferred; `meta.notes` holds every notice.
    """
    path = Path(path)
    where = str(path)
    if not path.exists():
        raise FileNotFoundError(2, "No such file", str(path))
    if not path.is_file():
        raise FormatError(f"{where} is a directory, not a Flinker HDF5 file; use read_recording() for directories.")
    kind = file_kind(path)
    if kind == "empty":
        raise FormatError(f"{where} is empty (0 bytes); the copy or download was probably interrupted.")
    if kind not in ("hdf5", "mat5"):
        raise FormatError(f"{where} is not HDF5 (no HDF5 signature): expected a Flinker-lab .h5/.hdf5 file or a "
                          "MATLAB v7.3 .mat. Check the file type, or convert it.")
    try:
        if kind == "hdf5":
            arrays, attrs, is_matlab = _load_hdf5(path, lazy)
        else:
            (arrays, attrs), is_matlab = _load_mat5(path), False
        return _from_arrays(arrays, attrs, path, is_matlab=is_matlab, neural_sfreq_hz=neural_sfreq_hz,
                            audio_sfreq_hz=audio_sfreq_hz, participant_id=participant_id, nonfinite=nonfinite)
    except NeurovoxError:
        raise
    except Exception as exc:  # corrupted files make h5py/numpy fail in many ways: report them all the same way
        raise FormatError(describe_hdf5_error(exc, where, "a Flinker HDF5 file")) from exc


def _from_arrays(arrays: dict[str, np.ndarray], attrs: dict[str, Any], path: Path, *, is_matlab: bool,
                 neural_sfreq_hz: float | None, audio_sfreq_hz: float | None, participant_id: str | None,
                 nonfinite: str) -> Recording:
    where = str(path)
    missing = [k for k in REQUIRED_KEYS if k not in arrays]
    if missing:
        found = ", ".join(sorted(arrays)[:12]) or "none"
        from neurovox.utils.check import suggest

        hint = "".join(suggest(k, arrays) for k in missing)
        raise FormatError(f"{where} lacks required key(s) {missing} (found: {found}).{hint} A Flinker file needs "
                          f"{list(REQUIRED_KEYS)}.")
    notes: list[str] = []
    derived: list[str] = []
    sfreq = float(neural_sfreq_hz or attrs.get("neural_sfreq_hz", DEFAULT_NEURAL_SFREQ_HZ))
    audio_sfreq = float(audio_sfreq_hz or attrs.get("audio_sfreq_hz", DEFAULT_AUDIO_SFREQ_HZ))
    # The Flinker convention fills in what the file does not say; listed, so `neurovox info` shows the assumption.
    for given, key, value in ((neural_sfreq_hz, "neural_sfreq_hz", f"{DEFAULT_NEURAL_SFREQ_HZ:g} Hz"),
                              (audio_sfreq_hz, "audio_sfreq_hz", f"{DEFAULT_AUDIO_SFREQ_HZ:g} Hz")):
        if not given and key not in attrs:
            derived.append(f"{key} attribute missing -> {value} (the Flinker convention)")
    if not (np.isfinite(sfreq) and np.isfinite(audio_sfreq) and sfreq > 0 and audio_sfreq > 0):
        raise FormatError(f"sampling rates of {where} must be positive, got neural {sfreq} Hz and audio "
                          f"{audio_sfreq} Hz; pass neural_sfreq_hz= / audio_sfreq_hz= to override.")
    ratio = audio_sfreq / sfreq

    neural = _numeric(arrays, NEURAL_KEY, where)   # an ndarray, or a LazyNeural (float, 2-D)
    if neural.ndim != 2:
        raise FormatError(f"{NEURAL_KEY} in {where} must be 2-D (n_frames, n_channels), got shape {neural.shape}.")
    wave = _numeric(arrays, AUDIO_KEY, where)
    if wave.ndim == 2 and 1 not in wave.shape and min(wave.shape) == 2:
        wave = wave.mean(axis=int(np.argmin(wave.shape)))
        notes.append(f"{AUDIO_KEY} is stereo: mixed down to mono.")
    elif wave.ndim > 2 or (wave.ndim == 2 and 1 not in wave.shape):
        raise FormatError(f"{AUDIO_KEY} in {where} must be mono audio, shape (n_audio_samples, 1), got {wave.shape}.")
    audio = wave.reshape(-1)

    # MATLAB stores arrays transposed: (C, T) instead of (T, C). Decide from the audio length.
    n_audio = audio.shape[0]
    fits = [abs(n_audio - n * ratio) <= ratio for n in neural.shape]
    transposed = not fits[0] and fits[1]
    if transposed:
        neural = neural.T
        n_frames = neural.shape[0]
        for key in FRAME_KEYS:
            a = arrays.get(key)
            if a is not None and np.ndim(a) == 2 and a.shape[-1] == n_frames:
                arrays[key] = np.asarray(a).T
        notes.append(f"{NEURAL_KEY} was stored transposed (channels x frames, as MATLAB writes it): "
                     f"transposed to {neural.shape}.")
    if audio.dtype.kind in "iu":
        scale = float(np.iinfo(audio.dtype).max) + 1.0
        audio = (audio.astype(np.float64) / scale).astype(np.float32)
        notes.append(f"{AUDIO_KEY} holds integers: scaled to [-1, 1] by 1/{scale:g}.")
    if neural.dtype.kind in "iub":   # (a LazyNeural converts on every read)
        neural = neural.astype(np.float32)
    if is_lazy(neural):
        notes.append(f"{NEURAL_KEY} ({neural.shape[0]} x {neural.shape[1]}, {neural.nbytes / 2 ** 20:.0f} MiB) left on "
                     "disk: read in chunks (neurovox.io.LazyNeural).")
    n_frames, n_channels = neural.shape

    # ---- channels
    channels, grid_density, layout_notes = _channels(arrays, n_channels, where)
    notes += layout_notes
    if "channel_name_alldataset" not in arrays:
        derived.append(f"channel names and grid layout (from the channel count: {grid_density} density)")

    # ---- trials
    trials, trial_derived, trial_notes = _trials(arrays, sfreq, n_frames, where)
    derived += trial_derived
    notes += trial_notes

    # ---- optional keys
    extras: dict[str, np.ndarray] = {}
    for key in OPTIONAL_KEYS:
        if key not in arrays:
            derived.append(f"{key} missing -> {HOW_DERIVED[key]}")
            continue
        value = np.asarray(arrays[key])
        if value.dtype.kind not in "fiub":
            notes.append(f"ignored {key}: dtype {value.dtype} is not numeric; it will be derived.")
            derived.append(f"{key} unusable -> {HOW_DERIVED[key]}")
            continue
        if key in FRAME_KEYS and (value.ndim == 0 or value.shape[0] != n_frames):
            notes.append(f"ignored {key}: shape {value.shape} does not match the {n_frames} neural frames; "
                         "it will be derived.")
            derived.append(f"{key} unusable -> {HOW_DERIVED[key]}")
            continue
        extras[key] = value
    known = set(REQUIRED_KEYS + OPTIONAL_KEYS + OWN_KEYS + (OFFSET_KEY, LABEL_KEY))
    unknown = sorted(k for k in arrays if k not in known)
    if unknown:
        notes.append(f"ignored unknown keys: {unknown[:10]}{' ...' if len(unknown) > 10 else ''}.")

    neural, channels, check_notes = check_contents(neural, channels, trials, nonfinite=nonfinite, where=where)
    notes += check_notes

    def _attr_list(name: str) -> list[str]:
        try:
            return [str(x) for x in json.loads(attrs.get(name, "[]"))]
        except (TypeError, ValueError):
            return []

    neural_kind = _pick(attrs.get("neural_kind"), ("raw", "high_gamma"), default="high_gamma")
    if attrs.get("neural_kind") is None:
        derived.append("neural_kind attribute missing -> high_gamma (the Flinker convention)")
    meta = RecordingMeta(
        participant_id=str(participant_id or attrs.get("participant_id", path.stem)),
        sex=_pick(attrs.get("sex"), ("F", "M", "unknown")),
        hemisphere=_pick(attrs.get("hemisphere"), ("left", "right", "both", "unknown")),
        grid_density=_pick(attrs.get("grid_density"), ("low", "hybrid", "seeg", "other"), default=grid_density),
        language=str(attrs.get("language", "unknown")),
        source_format="flinker_mat" if is_matlab or path.suffix.lower() == ".mat" else "flinker_hdf5",
        source_path=where,
        derived=list(dict.fromkeys(_attr_list("derived") + derived)),
        notes=list(dict.fromkeys(_attr_list("notes") + notes)),
    )
    return Recording(neural=neural, neural_sfreq_hz=sfreq, neural_kind=neural_kind, audio=audio,
                     audio_sfreq_hz=audio_sfreq, channels=channels, trials=trials, meta=meta, extras=extras,
                     neural_unit=str(attrs.get("neural_unit", "a.u.")))


def _pick(value: Any, allowed: tuple[str, ...], default: str = "unknown") -> Any:
    value = value.decode() if isinstance(value, bytes) else value
    return value if value in allowed else default


def _channels(arrays: dict[str, np.ndarray], n_channels: int, where: str) -> tuple[pd.DataFrame, str, list[str]]:
    default, density, notes = flinker_channel_table(n_channels)
    if "channel_name_alldataset" not in arrays:
        return default, density, notes

    def get(key: str, fallback: Any) -> Any:
        value = arrays.get(key)
        if value is None:
            return fallback
        if np.shape(value)[0] != n_channels:
            raise FormatError(f"{key} in {where} has {np.shape(value)[0]} entries but {NEURAL_KEY} has "
                              f"{n_channels} channels.")
        return value

    names = decode_strings(get("channel_name_alldataset", None))
    types = decode_strings(get("channel_type_alldataset", np.array(["ecog"] * n_channels)))
    groups = decode_strings(get("channel_group_alldataset", default["group"].to_numpy()))
    xyz = np.asarray(get("channel_xyz_alldataset", np.full((n_channels, 3), np.nan)), dtype=float)
    if xyz.shape != (n_channels, 3):
        raise FormatError(f"channel_xyz_alldataset in {where} must have shape ({n_channels}, 3), got {xyz.shape}.")
    table = make_channel_table(
        names, types, bad=np.asarray(get("channel_bad_alldataset", np.zeros(n_channels))).astype(bool).tolist(),
        row=np.asarray(get("channel_row_alldataset", default["row"].to_numpy())).reshape(-1),
        col=np.asarray(get("channel_col_alldataset", default["col"].to_numpy())).reshape(-1),
        xyz=xyz, group=groups)
    return table, density, []


def _trials(arrays: dict[str, np.ndarray], sfreq: float, n_frames: int,
            where: str) -> tuple[pd.DataFrame, list[str], list[str]]:
    derived: list[str] = []
    notes: list[str] = []
    start = _numeric(arrays, ONSET_KEY, where)
    if start.ndim == 2 and 1 in start.shape:
        start = start.reshape(-1)
    if start.ndim != 1:
        raise FormatError(f"{ONSET_KEY} in {where} must be 1-D (n_trials,), got shape {start.shape}.")
    n = start.shape[0]
    if n == 0:
        raise DataError(f"trial table of {where} is empty: {ONSET_KEY} has no entries. "
                        "Provide speech onsets/offsets (events) for the recording.")

    def per_trial(key: str) -> np.ndarray | None:
        if key not in arrays:
            return None
        value = np.asarray(arrays[key])
        if value.ndim == 2 and 1 in value.shape:
            value = value.reshape(-1)
        if value.ndim != 1 or value.shape[0] != n:
            raise FormatError(f"{key} in {where} must have one entry per trial ({n}, like {ONSET_KEY}), "
                              f"got shape {value.shape}.")
        return value

    onset_s = per_trial("onset_s_alldataset")
    offset_s = per_trial("offset_s_alldataset")
    if onset_s is None:
        onset_s = start.astype(np.float64) / sfreq
    end = per_trial(OFFSET_KEY)
    if offset_s is None and end is not None:
        if end.dtype.kind not in "fiu":
            raise FormatError(f"{OFFSET_KEY} in {where} must hold numbers, got dtype {end.dtype}.")
        offset_s = end.astype(np.float64) / sfreq
    if offset_s is None:
        nxt = np.append(onset_s[1:], n_frames / sfreq)
        offset_s = np.minimum(onset_s + DEFAULT_OFFSET_S, np.maximum(nxt, onset_s + 1.0 / sfreq))
        derived.append(f"speech offsets ({OFFSET_KEY} missing: onset + {DEFAULT_OFFSET_S:g} s, capped by the "
                       "next onset)")
    labels = per_trial(LABEL_KEY)
    if labels is None:
        labels = ["unknown"] * n
        derived.append(f"word labels ({LABEL_KEY} missing: every trial labelled 'unknown')")
    else:
        labels = decode_strings(labels)
    tasks = per_trial(TASK_KEY)
    if tasks is not None:
        tasks = decode_strings(tasks)
    elif n % N_FLINKER_TASKS == 0 and n >= N_FLINKER_TASKS:
        size = n // N_FLINKER_TASKS
        tasks = [f"task{i // size + 1}" for i in range(n)]
        derived.append(f"task names ({TASK_KEY} missing: {N_FLINKER_TASKS} equal consecutive blocks of {size} "
                       "trials, task1..task5, as Flinker files list the 5 tasks in order)")
    else:
        tasks = ["task"] * n
        derived.append(f"task names ({TASK_KEY} missing and {n} trials do not split into {N_FLINKER_TASKS} "
                       "equal blocks: one task 'task')")
    return make_trial_table(onset_s, offset_s, labels, tasks), derived, notes
