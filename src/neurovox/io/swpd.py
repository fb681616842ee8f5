"""SingleWordProductionDutch (Verwoert et al., Sci Data 2022) iBIDS + NWB layout.

::

    bids_root/
      dataset_description.json, participants.tsv
      sub-XX/ieeg/sub-XX_task-wordProduction_ieeg.nwb       acquisition: iEEG, Audio, Stimulus
      sub-XX/ieeg/sub-XX_task-wordProduction_channels.tsv   name type units status ...
      sub-XX/ieeg/sub-XX_task-wordProduction_electrodes.tsv name x y z (+ row col group)
      sub-XX/ieeg/sub-XX_task-wordProduction_events.tsv     onset duration trial_type word (+ offset task)
      sub-XX/ieeg/sub-XX_task-wordProduction_ieeg.json      SamplingFrequency ... (+ "neurovox" metadata)

`iEEG` is an ElectricalSeries (n_samples, n_channels) of raw voltage (1024 Hz in the dataset),
`Audio` a TimeSeries (48 kHz in the dataset), `Stimulus` a TimeSeries of one word string per
iEEG sample (empty between words). The sidecars are optional when reading: channel names then
come from the NWB electrodes table (column `location`, as in the dataset), trials from runs of
equal non-empty `Stimulus` strings, and bad channels are taken from channels.tsv `status`.
Columns and keys marked (+) are neurovox's own, for exact round trips.

An iEEG array larger than `neurovox.utils.memory.in_memory_limit_bytes()` (or any, with
``lazy=True``) stays on disk as a `LazyNeural`; writing one copies it by blocks of rows.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from neurovox.errors import DataError, FormatError, NeurovoxError
from neurovox.io._common import decode_strings, describe_hdf5_error, file_kind, trim_to_common_span
from neurovox.io.checks import check_contents
from neurovox.io.lazy import Hdf5Source, LazyNeural, is_lazy, processing_dtype
from neurovox.io.recording import CHANNEL_TYPES, Recording, RecordingMeta, make_channel_table, make_trial_table
from neurovox.utils.files import atomic_path, write_json_atomic, write_text_atomic
from neurovox.utils.memory import chunk_bytes, in_memory_limit_bytes

TASK = "wordProduction"
MAX_TRIM_S = 0.5   # audio and iEEG lengths differing by up to this much are trimmed to the common span
NA = "n/a"


def _subject_label(subject: str) -> str:
    label = str(subject).removeprefix("sub-")
    if not re.fullmatch(r"[A-Za-z0-9]+", label):
        raise DataError(f"subject must be alphanumeric (a BIDS label such as '01'), got {subject!r}.")
    return label


def _tsv(df: pd.DataFrame) -> str:
    return df.to_csv(sep="\t", index=False, na_rep=NA, lineterminator="\n")


def _read_tsv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, sep="\t", na_values=[NA], keep_default_na=False,
                           dtype={c: str for c in ("name", "word", "trial_type", "task", "value", "participant_id",
                                                   "group", "status", "type", "sex")})
    except Exception as exc:
        raise FormatError(f"cannot read {path} as a tab-separated BIDS table ({type(exc).__name__}: {exc}).") from exc


# ------------------------------------------------------------------------------------ writing
def write_swpd(rec: Recording, bids_root: str | os.PathLike, subject: str = "01") -> Path:
    """Write `rec` in the SingleWordProductionDutch iBIDS layout; `read_swpd` reads it back exactly.

    Parameters
    ----------
    rec : Recording
        Usually raw voltage (1024 Hz) with 48 or 16 kHz audio.
    bids_root : path-like
        BIDS dataset root; created if needed. Other subjects already there are kept
        (participants.tsv is updated).
    subject : str
        BIDS subject label ("01" or "sub-01").

    Returns
    -------
    nwb_path : Path
        ``bids_root/sub-XX/ieeg/sub-XX_task-wordProduction_ieeg.nwb``
    """
    if not isinstance(rec, Recording):
        raise TypeError(f"rec must be a Recording, got {type(rec).__name__}.")
    sub = _subject_label(subject)
    root = Path(bids_root)
    root.mkdir(parents=True, exist_ok=True)
    name = f"sub-{sub}_task-{TASK}"
    ch = rec.channels
    sfreq = rec.neural_sfreq_hz
    tr = rec.trials
    on = tr["onset_s"].to_numpy(np.float64)
    off = tr["offset_s"].to_numpy(np.float64)
    m = rec.meta

    # The whole subject directory is built under a temporary name and renamed at the end: an
    # interrupted write leaves no partial subject (an existing one is replaced only on success).
    with atomic_path(root / f"sub-{sub}") as tmp_sub:
        prefix = tmp_sub / "ieeg" / name
        prefix.parent.mkdir(parents=True)
        status = np.where(ch["bad"].to_numpy(bool), "bad", "good")
        Path(f"{prefix}_channels.tsv").write_text(_tsv(pd.DataFrame({
            "name": ch["name"], "type": ch["type"].str.upper(),
            "units": "V" if rec.neural_kind == "raw" else rec.neural_unit,
            "sampling_frequency": sfreq, "status": status,
            "status_description": np.where(status == "bad", "marked bad", NA)})))
        Path(f"{prefix}_electrodes.tsv").write_text(_tsv(pd.DataFrame({
            "name": ch["name"], "x": ch["x"], "y": ch["y"], "z": ch["z"],
            "row": ch["row"], "col": ch["col"], "group": ch["group"].replace("", NA)})))
        Path(f"{prefix}_events.tsv").write_text(_tsv(pd.DataFrame({
            "onset": on, "duration": off - on, "trial_type": tr["task"], "word": tr["label"], "offset": off})))
        Path(f"{prefix}_ieeg.json").write_text(json.dumps({
            "TaskName": TASK, "SamplingFrequency": sfreq, "PowerLineFrequency": NA,
            "SoftwareFilters": NA, "iEEGReference": NA,
            "ECOGChannelCount": int((ch["type"] == "ecog").sum()),
            "SEEGChannelCount": int((ch["type"] == "seeg").sum()),
            "RecordingDuration": rec.neural_duration_s,
            "neurovox": {"participant_id": m.participant_id, "sex": m.sex, "hemisphere": m.hemisphere,
                         "grid_density": m.grid_density, "language": m.language, "neural_kind": rec.neural_kind,
                         "neural_unit": rec.neural_unit, "derived": list(m.derived), "notes": list(m.notes)}},
            indent=2) + "\n")
        _write_nwb(rec, Path(f"{prefix}_ieeg.nwb"), sub, on, off)

    # ---- dataset-level files (each written atomically)
    if not (root / "dataset_description.json").exists():
        write_json_atomic(root / "dataset_description.json", {
            "Name": "neurovox SingleWordProductionDutch-layout dataset", "BIDSVersion": "1.8.0",
            "DatasetType": "raw", "GeneratedBy": [{"Name": "neurovox"}]})
    part_path = root / "participants.tsv"
    row = pd.DataFrame({"participant_id": [f"sub-{sub}"], "sex": [m.sex], "hemisphere": [m.hemisphere]})
    if part_path.exists():
        old = _read_tsv(part_path)
        old = old[old["participant_id"].astype(str) != f"sub-{sub}"] if "participant_id" in old else old.iloc[0:0]
        row = pd.concat([old, row], ignore_index=True)
    write_text_atomic(part_path, _tsv(row))
    return root / f"sub-{sub}" / "ieeg" / f"{name}_ieeg.nwb"


def _write_nwb(rec: Recording, path: Path, sub: str, on: np.ndarray, off: np.ndarray) -> None:
    from pynwb import NWBHDF5IO, NWBFile, TimeSeries
    from pynwb.ecephys import ElectricalSeries

    ch = rec.channels
    sfreq = rec.neural_sfreq_hz
    nwb = NWBFile(session_description=f"{TASK}: {rec.meta.participant_id}", identifier=f"sub-{sub}_task-{TASK}",
                  session_start_time=_dt.datetime(2000, 1, 1, tzinfo=_dt.timezone.utc))
    device = nwb.create_device(name="amplifier")
    groups = {}
    for g in dict.fromkeys(ch["group"].replace("", "ieeg").tolist()):
        groups[g] = nwb.create_electrode_group(name=g, description=f"electrodes of {g}", location=g, device=device)
    for i in range(len(ch)):
        r = ch.iloc[i]
        nwb.add_electrode(x=float(r["x"]), y=float(r["y"]), z=float(r["z"]), location=str(r["name"]),
                          group=groups[str(r["group"]) or "ieeg"])
    region = nwb.create_electrode_table_region(list(range(len(ch))), "all channels")
    nwb.add_acquisition(ElectricalSeries(name="iEEG", data=_nwb_data(rec.neural), electrodes=region, rate=sfreq,
                                         starting_time=0.0, description=rec.neural_kind))
    nwb.add_acquisition(TimeSeries(name="Audio", data=rec.audio, unit="a.u.", rate=rec.audio_sfreq_hz,
                                   starting_time=0.0))
    stim = np.full(rec.n_samples, "", dtype=object)
    for o, f, label in zip(on, off, rec.trials["label"].tolist()):
        stim[int(round(o * sfreq)):int(round(f * sfreq))] = label
    nwb.add_acquisition(TimeSeries(name="Stimulus", data=stim.tolist(), unit="n/a", rate=sfreq, starting_time=0.0))
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)


def _nwb_data(neural: np.ndarray | LazyNeural) -> Any:
    """The iEEG data for pynwb: the array itself, or for a LazyNeural an iterator over blocks of rows."""
    if not is_lazy(neural):
        return neural
    from hdmf.data_utils import GenericDataChunkIterator

    class _Rows(GenericDataChunkIterator):
        def _get_data(self, selection: tuple) -> np.ndarray:
            rows, cols = selection
            return neural.read(rows.start or 0, rows.stop)[:, cols]

        def _get_maxshape(self) -> tuple:
            return neural.shape

        def _get_dtype(self) -> np.dtype:
            return neural.dtype

    rows = neural.rows_for_bytes(chunk_bytes(), neural.dtype.itemsize)
    return _Rows(buffer_shape=(min(rows, neural.shape[0]), neural.shape[1]),
                 chunk_shape=(min(rows, neural.shape[0], 1 << 16), neural.shape[1]), display_progress=False)


# ------------------------------------------------------------------------------------ locating
def find_swpd_nwb(path: str | os.PathLike, subject: str | None = None) -> Path:
    """The `*_ieeg.nwb` file for a .nwb path, a subject (or its ieeg) directory, or a BIDS root."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(2, "No such file or directory", str(path))
    if path.is_file():
        return path
    if path.name == "ieeg" or path.name.startswith("sub-"):
        found = sorted(path.glob("*_ieeg.nwb")) + sorted(path.glob("ieeg/*_ieeg.nwb")) + \
            sorted(path.glob("ses-*/ieeg/*_ieeg.nwb"))
        if not found:
            raise FormatError(f"no *_ieeg.nwb file in subject directory {path}.")
        return found[0]
    if not (path / "dataset_description.json").exists():
        raise FormatError(f"directory is not BIDS: no dataset_description.json in {path}. Pass a BIDS root, a "
                          "sub-XX directory or a .nwb file.")
    found = sorted(path.glob("sub-*/ieeg/*_ieeg.nwb")) + sorted(path.glob("sub-*/ses-*/ieeg/*_ieeg.nwb"))
    if subject is not None:
        sub = f"sub-{_subject_label(subject)}"
        found = [p for p in found if p.name.startswith(sub + "_")]
    subjects = sorted({p.name.split("_")[0] for p in found})
    if not found:
        raise FormatError(f"no sub-*/ieeg/*_ieeg.nwb file in BIDS root {path}"
                          f"{' for subject ' + str(subject) if subject else ''}.")
    if len(subjects) > 1:
        raise DataError(f"BIDS root {path} holds {len(subjects)} subjects ({', '.join(subjects[:10])}): "
                        "pass subject='XX' (CLI: --subject XX).")
    return found[0]


# ------------------------------------------------------------------------------------ reading
def read_swpd(path: str | os.PathLike, subject: str | None = None, *, nonfinite: str = "raise",
              lazy: bool | None = None) -> Recording:
    """Read a SingleWordProductionDutch-layout recording.

    Parameters
    ----------
    path : path-like
        The ``*_ieeg.nwb`` file, the ``sub-XX`` directory, or the BIDS root (then `subject`
        must be given unless the dataset holds one subject).
    subject : str, optional
        BIDS subject label ("01" or "sub-01").
    nonfinite : {"raise", "mark_bad", "interpolate"}
        What to do with NaN/Inf neural samples (see `neurovox.io.checks`).
    lazy : bool, optional
        Leave the iEEG array on disk as a `LazyNeural` (True), load it (False), or decide from its
        size (None: lazy above `neurovox.utils.memory.in_memory_limit_bytes()`).

    Returns
    -------
    rec : Recording
    """
    nwb_path = find_swpd_nwb(path, subject)
    where = str(nwb_path)
    kind = file_kind(nwb_path)
    if kind != "hdf5":
        raise FormatError(f"{where} is not HDF5 (an NWB file is HDF5): "
                          f"{'it is empty' if kind == 'empty' else 'no HDF5 signature'}. Copy the file again.")
    try:
        return _read(nwb_path, nonfinite, lazy)
    except NeurovoxError:
        raise
    except Exception as exc:   # pynwb/h5py fail in many ways on corrupted files: one message for all
        raise FormatError(describe_hdf5_error(exc, where, "an NWB file")) from exc


def _keep_on_disk(data: Any, lazy: bool | None) -> bool:
    """Whether to leave the iEEG dataset `data` (an h5py.Dataset) on disk."""
    if lazy is False or not hasattr(data, "id") or data.ndim != 2 or data.dtype.kind not in "fiu":
        return False
    if lazy:
        return True
    return data.size * processing_dtype(data.dtype).itemsize > in_memory_limit_bytes()


def _read(nwb_path: Path, nonfinite: str, lazy: bool | None = None) -> Recording:
    from pynwb import NWBHDF5IO

    where = str(nwb_path)
    notes: list[str] = []
    derived: list[str] = []
    with NWBHDF5IO(str(nwb_path), "r") as io:
        nwb = io.read()
        acq = nwb.acquisition
        missing = [k for k in ("iEEG", "Audio") if k not in acq]
        if missing:
            raise FormatError(f"{where} lacks acquisition {missing} (found: {sorted(acq)}); an SWPD file holds "
                              "'iEEG', 'Audio' and 'Stimulus'.")
        series = acq["iEEG"]
        if _keep_on_disk(series.data, lazy):
            neural = LazyNeural(Hdf5Source(where, series.data.name))
        else:
            neural = np.asarray(series.data[:])
        sfreq = _rate(series, "iEEG", where)
        audio_series = acq["Audio"]
        audio = np.asarray(audio_series.data[:])
        audio_sfreq = _rate(audio_series, "Audio", where)
        stim = decode_strings(np.asarray(acq["Stimulus"].data[:])) if "Stimulus" in acq else None
        nwb_names = None
        electrodes = getattr(series, "electrodes", None)
        if electrodes is not None:
            table = electrodes.table.to_dataframe()
            rows = table.iloc[np.asarray(electrodes.data[:], dtype=int)]
            if "location" in rows:
                nwb_names = [str(s) for s in rows["location"].tolist()]
        neural_desc = str(getattr(series, "description", ""))
    if neural.ndim != 2:
        raise FormatError(f"iEEG in {where} must be 2-D (n_samples, n_channels), got shape {neural.shape}.")
    if neural.dtype.kind not in "fiu":
        raise FormatError(f"iEEG in {where} must hold numbers, got dtype {neural.dtype}.")
    if is_lazy(neural):
        notes.append(f"iEEG ({neural.shape[0]} x {neural.shape[1]}, {neural.nbytes / 2 ** 20:.0f} MiB) left on disk: "
                     "read in chunks (neurovox.io.LazyNeural).")
    if audio.ndim == 2 and 1 not in audio.shape:
        audio = audio.mean(axis=1)
        notes.append("Audio is multichannel: mixed down to mono.")
    audio = audio.reshape(-1) if audio.ndim == 2 else audio
    if audio.dtype.kind in "iu":
        scale = float(np.iinfo(audio.dtype).max) + 1.0
        audio = (audio.astype(np.float64) / scale).astype(np.float32)
        notes.append(f"Audio holds integers: scaled to [-1, 1] by 1/{scale:g}.")
    n_channels = neural.shape[1]

    prefix = nwb_path.name.removesuffix("_ieeg.nwb")
    side = lambda suffix: nwb_path.with_name(f"{prefix}_{suffix}")  # noqa: E731
    sidecar = {}
    if side("ieeg.json").exists():
        try:
            sidecar = json.loads(side("ieeg.json").read_text()).get("neurovox", {}) or {}
        except (ValueError, AttributeError) as exc:
            raise FormatError(f"{side('ieeg.json')} is not valid JSON: {exc}.") from exc

    channels = _channel_table(side, nwb_names, n_channels, sidecar, where, derived)
    trials = _trial_table(side, stim, sfreq, where, derived)

    sub = prefix.split("_")[0]
    sex = "unknown"
    part = nwb_path.parent.parent.parent / "participants.tsv"
    if part.exists():
        p = _read_tsv(part)
        if "participant_id" in p and "sex" in p:
            hit = p.loc[p["participant_id"].astype(str) == sub, "sex"]
            if len(hit):
                sex = {"f": "F", "female": "F", "m": "M", "male": "M"}.get(str(hit.iloc[0]).strip().lower(), "unknown")
    sex = sidecar.get("sex", sex)

    neural, audio, trim_notes = trim_to_common_span(neural, sfreq, audio, audio_sfreq, max_trim_s=MAX_TRIM_S,
                                                    where=where)
    notes += trim_notes
    neural, channels, check_notes = check_contents(neural, channels, trials, nonfinite=nonfinite, where=where)
    notes += check_notes
    kind = sidecar.get("neural_kind", neural_desc if neural_desc in ("raw", "high_gamma") else "raw")
    meta = RecordingMeta(
        participant_id=str(sidecar.get("participant_id", sub)), sex=sex if sex in ("F", "M") else "unknown",
        hemisphere=sidecar.get("hemisphere", "unknown"),
        grid_density=sidecar.get("grid_density", "seeg" if (channels["type"] == "seeg").all() else "unknown"),
        # SingleWordProductionDutch is Dutch; files neurovox wrote say their own language in the sidecar
        language=str(sidecar.get("language", "nl")), source_format="swpd_nwb", source_path=where,
        derived=list(dict.fromkeys(list(sidecar.get("derived", [])) + derived)),
        notes=list(dict.fromkeys(list(sidecar.get("notes", [])) + notes)))
    return Recording(neural=neural, neural_sfreq_hz=sfreq, neural_kind=kind, audio=audio, audio_sfreq_hz=audio_sfreq,
                     channels=channels, trials=trials, meta=meta,
                     neural_unit=str(sidecar.get("neural_unit", "V")))


def _rate(series: Any, name: str, where: str) -> float:
    rate = getattr(series, "rate", None)
    if rate is None:
        ts = getattr(series, "timestamps", None)
        if ts is None or len(ts) < 2:
            raise FormatError(f"{name} in {where} has neither a rate nor timestamps.")
        rate = 1.0 / float(np.median(np.diff(np.asarray(ts[:]))))
    return float(rate)


def _shaft(name: str) -> str:
    """sEEG shaft of a contact name: its leading letters ("LA12" -> "LA")."""
    m = re.match(r"^([A-Za-z']+)", name)
    return m.group(1) if m else ""


def _channel_table(side: Any, nwb_names: list[str] | None, n_channels: int, sidecar: dict, where: str,
                   derived: list[str]) -> pd.DataFrame:
    ch_tsv = _read_tsv(side("channels.tsv")) if side("channels.tsv").exists() else None
    el_tsv = _read_tsv(side("electrodes.tsv")) if side("electrodes.tsv").exists() else None
    if nwb_names is not None and len(nwb_names) == n_channels:
        names = nwb_names
    elif ch_tsv is not None and "name" in ch_tsv:
        names = ch_tsv["name"].astype(str).tolist()
        # channels.tsv may list non-neural channels too; keep the first n_channels if it lists more
        if len(names) < n_channels:
            raise FormatError(f"{side('channels.tsv')} lists {len(names)} channels but iEEG in {where} has "
                              f"{n_channels}.")
        names = names[:n_channels]
    else:
        names = [f"ch{i + 1:03d}" for i in range(n_channels)]
        derived.append("channel names (none in the file: ch001, ch002, ...)")
    types = ["seeg"] * n_channels
    bad = [False] * n_channels
    if ch_tsv is not None and "name" in ch_tsv:
        info = ch_tsv.set_index(ch_tsv["name"].astype(str))
        info = info[~info.index.duplicated()]
        if "type" in info:
            types = [str(info["type"].get(n, "seeg")).lower() if n in info.index else "seeg" for n in names]
            types = [t if t in CHANNEL_TYPES else "misc" for t in types]
        if "status" in info:
            bad = [str(info["status"].get(n, "good")).strip().lower() == "bad" if n in info.index else False
                   for n in names]
    else:
        derived.append("channel types (no channels.tsv: assumed sEEG) and bad flags (none)")
    xyz = np.full((n_channels, 3), np.nan)
    row = np.full(n_channels, -1)
    col = np.full(n_channels, -1)
    group = [_shaft(n) for n in names]
    if el_tsv is not None and "name" in el_tsv:
        el = el_tsv.set_index(el_tsv["name"].astype(str))
        el = el[~el.index.duplicated()]
        for i, n in enumerate(names):
            if n not in el.index:
                continue
            for j, axis in enumerate("xyz"):
                if axis in el:
                    xyz[i, j] = pd.to_numeric(pd.Series([el[axis][n]]), errors="coerce").iloc[0]
            if "row" in el and pd.notna(el["row"][n]):
                row[i] = int(el["row"][n])
            if "col" in el and pd.notna(el["col"][n]):
                col[i] = int(el["col"][n])
            if "group" in el:
                group[i] = "" if pd.isna(el["group"][n]) else str(el["group"][n])
    if el_tsv is None or "group" not in el_tsv:
        derived.append("electrode groups (sEEG shafts from the leading letters of channel names)")
    return make_channel_table(names, types, bad=bad, row=row, col=col, xyz=xyz, group=group)


def _trial_table(side: Any, stim: list[str] | None, sfreq: float, where: str, derived: list[str]) -> pd.DataFrame:
    if side("events.tsv").exists():
        ev = _read_tsv(side("events.tsv"))
        if "onset" not in ev:
            raise FormatError(f"{side('events.tsv')} lacks the 'onset' column (columns: {list(ev.columns)}).")
        on = pd.to_numeric(ev["onset"], errors="coerce").to_numpy(float)
        if "offset" in ev:
            off = pd.to_numeric(ev["offset"], errors="coerce").to_numpy(float)
        elif "duration" in ev:
            off = on + pd.to_numeric(ev["duration"], errors="coerce").to_numpy(float)
        else:
            raise FormatError(f"{side('events.tsv')} lacks the 'duration' column (columns: {list(ev.columns)}).")
        label_col = next((c for c in ("word", "value", "stim_word", "trial_type") if c in ev), None)
        labels = ev[label_col].astype(str).tolist() if label_col else ["unknown"] * len(ev)
        if "task" in ev:
            tasks = ev["task"].astype(str).tolist()
        elif "trial_type" in ev and label_col != "trial_type":
            tasks = ev["trial_type"].astype(str).tolist()
        else:
            tasks = [TASK] * len(ev)
        return make_trial_table(on, off, labels, tasks)
    if stim is None:
        raise DataError(f"trial table of {where} is empty: no _events.tsv beside it and no 'Stimulus' series. "
                        "Provide speech onsets/offsets (events) for the recording.")
    words = np.asarray(stim, dtype=object)
    change = np.flatnonzero(words[1:] != words[:-1]) + 1
    starts = np.concatenate([[0], change])
    stops = np.concatenate([change, [len(words)]])
    keep = [i for i, s in enumerate(starts) if words[s] != ""]
    derived.append("trials (no _events.tsv: runs of equal non-empty Stimulus words)")
    return make_trial_table(starts[keep] / sfreq, stops[keep] / sfreq, [words[starts[i]] for i in keep], TASK)
