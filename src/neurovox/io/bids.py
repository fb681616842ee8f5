"""BIDS-iEEG raw formats (BrainVision, EDF, BDF, EEGLAB, FIF) through MNE-BIDS.

The microphone is usually recorded as an extra channel of the amplifier: a channel named like
"audio", "microphone" or "mic" (any type, usually misc) is taken as the audio, resampled to
16 kHz; or pass `audio_path` (a WAV file on the same clock). Trials come from the events
(annotations): onset, duration, description = word; the task is the BIDS task entity.

Neural channels larger than `neurovox.utils.memory.in_memory_limit_bytes()` (as float32; or any,
with ``lazy=True``) are not preloaded: they stay on disk as a `LazyNeural` read through MNE.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from neurovox.errors import DataError, FormatError, NeurovoxError
from neurovox.io._common import trim_to_common_span
from neurovox.io.audio import load_wav, resample_audio
from neurovox.io.checks import check_contents
from neurovox.io.lazy import LazyNeural, MneSource
from neurovox.io.recording import Recording, RecordingMeta, make_channel_table, make_trial_table
from neurovox.utils.memory import in_memory_limit_bytes

AUDIO_NAME = re.compile(r"^(audio|microphone|mic|sound|speech)[\s_\-0-9]*$", re.IGNORECASE)
NEURAL_TYPES = ("ecog", "seeg")
RAW_EXTENSIONS = [".vhdr", ".edf", ".bdf", ".set", ".fif"]
MAX_TRIM_S = 0.5         # audio and neural lengths differing by up to this much are trimmed to the common span
DEFAULT_OFFSET_S = 1.0   # speech duration assumed for zero-duration events (capped by the next onset)


def find_bids_raw(bids_root: str | os.PathLike, subject: str | None = None, task: str | None = None, *,
                  session: str | None = None, run: str | None = None):
    """The single BIDSPath of an iEEG raw file matching the entities (DataError if none or several)."""
    import mne_bids

    root = Path(bids_root)
    if not root.is_dir():
        raise FileNotFoundError(2, "No such directory", str(root))
    if not (root / "dataset_description.json").exists():
        raise FormatError(f"directory is not BIDS: no dataset_description.json in {root}.")
    sub = None if subject is None else str(subject).removeprefix("sub-")
    paths = mne_bids.find_matching_paths(root, subjects=sub, tasks=task, sessions=session, runs=run,
                                         datatypes="ieeg", suffixes="ieeg", extensions=RAW_EXTENSIONS)
    paths = sorted({str(p.fpath): p for p in paths}.values(), key=lambda p: str(p.fpath))
    if not paths:
        subjects = mne_bids.get_entity_vals(root, "subject")
        raise FormatError(f"no iEEG recording ({'/'.join(RAW_EXTENSIONS)}) in BIDS root {root} for "
                          f"subject={subject!r}, task={task!r} (subjects there: {subjects[:10]}).")
    if len(paths) > 1:
        listing = ", ".join(p.basename for p in paths[:6])
        raise DataError(f"{len(paths)} iEEG recordings match in {root} ({listing}); pass subject, task, session "
                        "or run to choose one.")
    return paths[0]


def _keep_on_disk(raw) -> bool:
    """Whether all of the raw file's channels, as float32, exceed the in-memory limit."""
    return raw.n_times * len(raw.ch_names) * 4 > in_memory_limit_bytes()


def read_bids(bids_root: str | os.PathLike, subject: str | None = None, task: str | None = None, *,
              session: str | None = None, run: str | None = None, audio_channel: str | None = None,
              audio_path: str | os.PathLike | None = None, audio_sfreq_hz: float = 16000.0,
              nonfinite: str = "raise", lazy: bool | None = None) -> Recording:
    """Read one BIDS-iEEG recording (any raw format MNE-BIDS reads) into a `Recording`.

    Parameters
    ----------
    bids_root : path-like
        Dataset root (holds dataset_description.json).
    subject, task, session, run : str, optional
        BIDS entities; needed only when several recordings match.
    audio_channel : str, optional
        Name of the microphone channel (default: the channel named audio/microphone/mic/...).
    audio_path : path-like, optional
        A WAV file on the same clock, used when the raw file has no audio channel.
    audio_sfreq_hz : float
        Audio is resampled to this rate (default 16 kHz).
    nonfinite : {"raise", "mark_bad", "interpolate"}
    lazy : bool, optional
        Leave the neural channels on disk as a `LazyNeural` (True), load them (False), or decide from
        their size (None: lazy above `neurovox.utils.memory.in_memory_limit_bytes()`).

    Returns
    -------
    rec : Recording
        Raw voltage (volts) of the ECoG/sEEG channels at the file's rate.
    """
    import mne_bids

    bp = find_bids_raw(bids_root, subject, task, session=session, run=run)
    where = str(bp.fpath)
    try:
        raw = mne_bids.read_raw_bids(bp, verbose="error")
        if lazy is False or (lazy is None and not _keep_on_disk(raw)):
            raw.load_data(verbose="error")
    except NeurovoxError:
        raise
    except Exception as exc:
        msg = str(exc).splitlines()[0][:200] if str(exc) else ""
        raise FormatError(f"cannot read {where} through MNE-BIDS ({type(exc).__name__}: {msg}).") from exc
    notes: list[str] = []
    derived: list[str] = []
    sfreq = float(raw.info["sfreq"])
    ch_names = list(raw.ch_names)
    ch_types = raw.get_channel_types()

    # ---- audio
    if audio_channel is not None and audio_channel not in ch_names:
        from neurovox.utils.check import suggest

        raise DataError(f"audio_channel {audio_channel!r} is not a channel of {where}."
                        + suggest(audio_channel, ch_names))
    audio_idx = ch_names.index(audio_channel) if audio_channel else \
        next((i for i, n in enumerate(ch_names) if AUDIO_NAME.match(n)), None)
    if audio_idx is not None:
        audio = raw.get_data(picks=[audio_idx])[0]
        peak = float(np.max(np.abs(audio))) if audio.size else 0.0
        if peak > 1.0 or 0 < peak < 1e-3:
            audio = audio * (0.5 / peak)
            notes.append(f"audio channel {ch_names[audio_idx]!r} peaked at {peak:.3g} (not full-scale audio): "
                         "scaled to a peak of 0.5.")
        audio = resample_audio(audio.astype(np.float32), sfreq, audio_sfreq_hz)
        if sfreq != audio_sfreq_hz:
            notes.append(f"audio channel {ch_names[audio_idx]!r} resampled from {sfreq:g} Hz to {audio_sfreq_hz:g} Hz.")
    elif audio_path is not None:
        audio, audio_notes = load_wav(audio_path, audio_sfreq_hz)
        notes += audio_notes
    else:
        raise DataError(f"no audio in {where}: no channel is named audio/microphone/mic (channels: "
                        f"{ch_names[:8]}{' ...' if len(ch_names) > 8 else ''}). Pass audio_channel='NAME' or "
                        "audio_path='speech.wav' (recorded on the same clock).")

    # ---- neural channels
    picks = [i for i, t in enumerate(ch_types) if t in NEURAL_TYPES and i != audio_idx]
    if not picks:
        picks = [i for i, t in enumerate(ch_types) if t == "eeg" and i != audio_idx]
    if not picks:
        raise DataError(f"{where} has no ECoG or sEEG channel (types: {sorted(set(ch_types))}); set the channel "
                        "types in the dataset's _channels.tsv.")
    dropped = [ch_names[i] for i in range(len(ch_names)) if i not in picks and i != audio_idx]
    if dropped:
        notes.append(f"ignored {len(dropped)} non-neural channels: {dropped[:8]}{' ...' if len(dropped) > 8 else ''}.")
    if raw.preload:
        neural = raw.get_data(picks=picks).T.astype(np.float32)
    else:
        neural = LazyNeural(MneSource(raw, picks, where))
        notes.append(f"neural channels ({neural.shape[0]} x {neural.shape[1]}, {neural.nbytes / 2 ** 20:.0f} MiB) "
                     "left on disk: read in chunks (neurovox.io.LazyNeural).")
    names = [ch_names[i] for i in picks]
    types = [ch_types[i] for i in picks]
    xyz = np.array([raw.info["chs"][i]["loc"][:3] for i in picks], dtype=float)
    xyz[~np.isfinite(xyz).all(axis=1) | (xyz == 0).all(axis=1)] = np.nan
    groups = [(re.match(r"^([A-Za-z']+)", n).group(1) if re.match(r"^([A-Za-z']+)", n) else "")
              if t == "seeg" else "grid" for n, t in zip(names, types)]
    channels = make_channel_table(names, types, bad=[n in raw.info["bads"] for n in names], xyz=xyz, group=groups)
    if not np.isfinite(xyz).any():
        derived.append("electrode positions (none in the dataset)")

    # ---- trials from events
    ann = raw.annotations
    keep = [i for i, d in enumerate(ann.description) if not str(d).upper().startswith(("BAD", "EDGE"))]
    onset = np.asarray(ann.onset, dtype=float)[keep] - raw.first_time
    duration = np.asarray(ann.duration, dtype=float)[keep]
    order = np.argsort(onset, kind="stable")
    onset, duration = onset[order], duration[order]
    labels = [str(ann.description[keep[i]]) for i in order]
    offset = onset + duration
    zero = duration <= 0
    if zero.any():
        nxt = np.append(onset[1:], raw.n_times / sfreq)
        offset[zero] = np.minimum(onset + DEFAULT_OFFSET_S, np.maximum(nxt, onset + 1.0 / sfreq))[zero]
        derived.append(f"speech offsets of {int(zero.sum())} zero-duration events (onset + {DEFAULT_OFFSET_S:g} s, "
                       "capped by the next onset)")
    trials = make_trial_table(onset, offset, labels, bp.task or "task")

    neural, audio, trim_notes = trim_to_common_span(neural, sfreq, audio, audio_sfreq_hz, max_trim_s=MAX_TRIM_S,
                                                    where=where)
    notes += trim_notes
    neural, channels, check_notes = check_contents(neural, channels, trials, nonfinite=nonfinite, where=where)
    notes += check_notes
    sex = {1: "M", 2: "F"}.get(int((raw.info.get("subject_info") or {}).get("sex", 0) or 0), "unknown")
    density = "seeg" if set(types) == {"seeg"} else "unknown"
    meta = RecordingMeta(participant_id=f"sub-{bp.subject}", sex=sex, grid_density=density,
                         source_format=f"bids{bp.fpath.suffix.lower()}", source_path=where,
                         derived=derived, notes=notes)
    return Recording(neural=neural, neural_sfreq_hz=sfreq, neural_kind="raw", audio=audio,
                     audio_sfreq_hz=audio_sfreq_hz, channels=channels, trials=trials, meta=meta, neural_unit="V")
