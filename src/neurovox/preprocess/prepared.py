"""`prepare`: a Recording -> `Prepared` (high gamma at 125 Hz + aligned speech features), cached on disk.

Everything in `Prepared` lives on the 125 Hz frame clock: frame i <-> audio samples [128 i, 128 (i + 1)).
The neural features are NOT normalised (that depends on the split: see `Normalizer`).

Cache: `<cache_dir>/prepared-<key>/` holding `arrays.npz`, `tables.json`; the key is a SHA-256 of
the source file's content (`rec.meta.source_path`; the in-memory arrays when there is no file),
the channel and trial tables, the participant's sex, the config and `CACHE_VERSION`. Writes are
atomic (a temporary directory renamed into place), so an interrupted run leaves no partial entry.
Default cache dir: `$NEUROVOX_CACHE`, else `~/.cache/neurovox`.

A raw recording larger than memory (its array left on disk by the reader, `neurovox.io.LazyNeural`)
is hashed from its file in 1 MiB blocks and turned into high gamma chunk by chunk
(`extract_high_gamma`); what is cached, the 125 Hz frames and the speech features, is held whole.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from neurovox import dsp
from neurovox.config import to_dict
from neurovox.errors import DataError
from neurovox.io.lazy import is_lazy
from neurovox.io.recording import Recording, RecordingMeta
from neurovox.preprocess.config import PrepareConfig
from neurovox.preprocess.highgamma import audio_resample_note, extract_high_gamma, resample_audio
from neurovox.preprocess.speech import compute_speech_features, noise_spectrum, trial_frames
from neurovox.utils.check import validate_type
from neurovox.utils.files import atomic_path, sha256_file
from neurovox.utils.memory import chunk_bytes

CACHE_VERSION = "prepared-v1"
FRAME_RATE_HZ = dsp.FRAME_RATE_HZ
ARRAY_FIELDS = ("neural", "audio", "spec_power", "mel_db", "mel23_log", "f0_hz", "voiced", "formants_hz",
                "intensity_db", "noise_power")


@dataclass
class Prepared:
    """Aligned training material of one recording (see docs/architecture.md, "Data contracts")."""

    neural: np.ndarray          # (n_frames, n_channels) float32 high gamma, NOT normalised
    audio: np.ndarray           # (n_frames * 128,) float32, 16 kHz
    spec_power: np.ndarray      # (n_frames, 256) float32, dsp.stft_power of audio
    mel_db: np.ndarray          # (n_frames, 80) float32, dsp.power_to_db(dsp.power_to_mel(spec_power))
    f0_hz: np.ndarray           # (n_frames,) float32, 0 where unvoiced
    voiced: np.ndarray          # (n_frames,) bool
    formants_hz: np.ndarray     # (n_frames, 6) float32, NaN where undefined
    intensity_db: np.ndarray    # (n_frames,) float32
    noise_power: np.ndarray     # (256,) float32, mean pre-speech silence power spectrum of ALL trials (descriptive;
                                # a model uses `training_noise_power`, which never reads test trials)
    trials: pd.DataFrame        # onset_frame, offset_frame (exclusive), onset_s, offset_s, label, task
    channels: pd.DataFrame      # as Recording.channels (after re-referencing)
    meta: RecordingMeta
    source_sha256: str
    frame_rate_hz: float = FRAME_RATE_HZ
    mel23_log: np.ndarray | None = None   # (n_frames, 23) float32, SWPD-style natural-log mel
    notes: list[str] = field(default_factory=list)   # what was computed and how
    from_cache: bool = False    # True when loaded from the on-disk cache
    stream_input: dict | None = None  # what a live stream must carry for a causal run (stream_input_description);
                                      # set by the decoder's data preparation, not cached

    @property
    def n_frames(self) -> int:
        return int(self.neural.shape[0])

    @property
    def n_channels(self) -> int:
        return int(self.neural.shape[1])

    @property
    def good_mask(self) -> np.ndarray:
        return ~self.channels["bad"].to_numpy(bool)

    def __repr__(self) -> str:
        return (f"<Prepared {self.meta.participant_id} | {self.n_frames} frames @ {self.frame_rate_hz:g} Hz "
                f"({self.n_frames / self.frame_rate_hz:.1f} s) x {self.n_channels} ch, {len(self.trials)} trials"
                f"{', cached' if self.from_cache else ''}>")


def default_cache_dir() -> Path:
    """`$NEUROVOX_CACHE`, else `~/.cache/neurovox`."""
    env = os.environ.get("NEUROVOX_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "neurovox"


def recording_sha256(rec: Recording) -> str:
    """SHA-256 of the source file (or of the in-memory arrays when the recording has no file)."""
    path = Path(rec.meta.source_path) if rec.meta.source_path else None
    if path is not None and path.exists():
        return sha256_file(path)
    h = hashlib.sha256()
    for arr in (rec.neural, rec.audio):
        h.update(str((arr.dtype, arr.shape)).encode())
        if is_lazy(arr):   # on disk: hash it by blocks of rows
            for _, rows in arr.iter_rows(arr.rows_for_bytes(chunk_bytes(), arr.dtype.itemsize)):
                h.update(rows.tobytes())
        else:
            h.update(np.ascontiguousarray(arr).tobytes())
    h.update(f"{rec.neural_sfreq_hz}|{rec.audio_sfreq_hz}|{rec.neural_kind}".encode())
    return h.hexdigest()


def cache_key(rec: Recording, cfg: PrepareConfig, source_sha256: str) -> str:
    """Key of a cache entry: source content + tables + sex + config + cache version."""
    h = hashlib.sha256()
    h.update(CACHE_VERSION.encode())
    h.update(source_sha256.encode())
    h.update(rec.channels.to_csv(index=False).encode())
    h.update(rec.trials.to_csv(index=False).encode())
    h.update(f"{rec.meta.sex}|{rec.neural_kind}|{rec.neural_sfreq_hz}".encode())
    h.update(json.dumps(to_dict(cfg), sort_keys=True).encode())
    return h.hexdigest()[:32]


def _neural_frames(rec: Recording, cfg: PrepareConfig,
                   chunk_mb: float | None = None) -> tuple[np.ndarray, np.ndarray, pd.DataFrame, list[str]]:
    """High gamma at 125 Hz, 16 kHz audio, channel table, notes."""
    if rec.neural_kind == "raw":
        hg = extract_high_gamma(rec, cfg.high_gamma_config(), chunk_mb=chunk_mb)
        return hg.neural, hg.audio, hg.channels, hg.meta.notes[len(rec.meta.notes):]
    notes = []
    neural = np.asarray(rec.neural, dtype=np.float32)
    if abs(rec.neural_sfreq_hz - FRAME_RATE_HZ) > 1e-6:
        from fractions import Fraction

        import scipy.signal as ss

        r = Fraction(FRAME_RATE_HZ).limit_denominator(1000) / Fraction(rec.neural_sfreq_hz).limit_denominator(1000)
        neural = ss.resample_poly(neural.astype(np.float64), r.numerator, r.denominator, axis=0).astype(np.float32)
        notes.append(f"high gamma resampled from {rec.neural_sfreq_hz:g} Hz to {FRAME_RATE_HZ:g} Hz (resample_poly)")
    audio = resample_audio(rec.audio, rec.audio_sfreq_hz)
    if rec.audio_sfreq_hz != dsp.SAMPLE_RATE_HZ:
        notes.append(audio_resample_note(rec.audio_sfreq_hz))
    return neural, audio, rec.channels.copy(), notes


def _compute(rec: Recording, cfg: PrepareConfig, source_sha256: str, chunk_mb: float | None = None) -> Prepared:
    neural, audio, channels, notes = _neural_frames(rec, cfg, chunk_mb)
    n_frames = min(neural.shape[0], len(audio) // dsp.HOP_SAMPLES)
    if n_frames < 2:
        raise DataError(f"{rec.meta.source_path or 'recording'} yields only {n_frames} frames at 125 Hz; nothing to prepare.")
    neural = np.ascontiguousarray(neural[:n_frames], dtype=np.float32)
    audio = np.ascontiguousarray(audio[: n_frames * dsp.HOP_SAMPLES], dtype=np.float32)
    feats = compute_speech_features(audio, cfg, sex=rec.meta.sex)
    on, off = trial_frames(rec.trials, n_frames)
    trials = pd.DataFrame({"onset_frame": on, "offset_frame": off,
                           "onset_s": rec.trials["onset_s"].to_numpy(float),
                           "offset_s": rec.trials["offset_s"].to_numpy(float),
                           "label": rec.trials["label"].astype(str).to_numpy(),
                           "task": rec.trials["task"].astype(str).to_numpy()})
    noise, noise_note = noise_spectrum(feats.spec_power, on, off,
                                       context_frames=int(round(cfg.noise_context_s * FRAME_RATE_HZ)),
                                       guard_frames=int(round(cfg.noise_guard_s * FRAME_RATE_HZ)))
    notes = notes + [noise_note] + ([] if cfg.praat else ["Praat features skipped (praat=False)"])
    meta = dataclasses.replace(rec.meta, derived=list(rec.meta.derived), notes=list(rec.meta.notes))
    return Prepared(neural=neural, audio=audio, spec_power=feats.spec_power, mel_db=feats.mel_db,
                    f0_hz=feats.f0_hz, voiced=feats.voiced, formants_hz=feats.formants_hz,
                    intensity_db=feats.intensity_db, noise_power=noise, trials=trials, channels=channels,
                    meta=meta, source_sha256=source_sha256, mel23_log=feats.mel23_log, notes=notes)


def training_noise_power(prepared: Prepared, cfg: PrepareConfig, frame_mask: np.ndarray) -> tuple[np.ndarray, str]:
    """Background-noise power spectrum (256,) from the pre-speech silence of the frames in `frame_mask`
    (a split's `train_frame_mask`), and how it was obtained.

    `Prepared.noise_power` pools the silence before every trial, test trials included; it stays in the
    cache because the cache does not depend on a split. Whatever a model learns from (the synthesizer's
    background noise) is computed here, from training frames only, with the same settings.
    """
    on = prepared.trials["onset_frame"].to_numpy(np.int64)
    off = prepared.trials["offset_frame"].to_numpy(np.int64)
    return noise_spectrum(prepared.spec_power, on, off, frame_mask=frame_mask,
                          context_frames=int(round(cfg.noise_context_s * FRAME_RATE_HZ)),
                          guard_frames=int(round(cfg.noise_guard_s * FRAME_RATE_HZ)))


def save_prepared(prep: Prepared, directory: str | os.PathLike) -> Path:
    """Write a Prepared to `directory` atomically (arrays.npz + tables.json)."""
    directory = Path(directory)
    with atomic_path(directory) as tmp:
        tmp.mkdir(parents=True)
        np.savez(tmp / "arrays.npz", **{k: getattr(prep, k) for k in ARRAY_FIELDS})
        tables = {"trials": prep.trials.to_dict(orient="list"), "channels": prep.channels.to_dict(orient="list"),
                  "meta": dataclasses.asdict(prep.meta), "source_sha256": prep.source_sha256,
                  "frame_rate_hz": prep.frame_rate_hz, "notes": prep.notes, "version": CACHE_VERSION}
        (tmp / "tables.json").write_text(json.dumps(tables, default=_json_default))
    return directory


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(type(obj).__name__)


def load_prepared(directory: str | os.PathLike) -> Prepared:
    """Read a Prepared written by `save_prepared`."""
    directory = Path(directory)
    with np.load(directory / "arrays.npz") as z:
        arrays = {k: z[k] for k in ARRAY_FIELDS}
    tables = json.loads((directory / "tables.json").read_text())
    trials = pd.DataFrame(tables["trials"])
    for col in ("onset_frame", "offset_frame"):
        trials[col] = trials[col].astype(np.int64)
    channels = pd.DataFrame(tables["channels"])
    channels["bad"] = channels["bad"].astype(bool)
    return Prepared(**arrays, trials=trials, channels=channels, meta=RecordingMeta(**tables["meta"]),
                    source_sha256=tables["source_sha256"], frame_rate_hz=float(tables["frame_rate_hz"]),
                    notes=list(tables["notes"]), from_cache=True)


def select_channel_set(rec: Recording, channel_set: str) -> Recording:
    """The recording with only the contacts of `channel_set` (PrepareConfig.channels).

    "ld_from_hb" keeps the macro contacts of a hybrid-density grid (channel group "macro", the Flinker
    convention), before any re-referencing, so the result is what a low-density grid at the same sites
    records; their grid coordinates are halved when they sit on the even positions of the hybrid grid
    (15 x 15 at 5 mm -> 8 x 8 at 10 mm). A recording on disk (LazyNeural) has its subset read into memory.
    """
    if channel_set == "all":
        return rec
    groups = rec.channels["group"].astype(str).str.lower().to_numpy()
    macro = groups == "macro"
    if not macro.any() or macro.all():
        found = ", ".join(sorted(set(groups.tolist()))[:5]) or "none"
        raise DataError(f"prepare.channels=ld_from_hb keeps the macro contacts of a hybrid-density grid, but "
                        f"{rec.meta.source_path or 'this recording'} ({rec.n_channels} channels, density "
                        f"{rec.meta.grid_density!r}) has {'no' if not macro.any() else 'only'} channels of group 'macro' "
                        f"(groups: {found}). Use it on hybrid grids (e.g. `neurovox simulate --layout hybrid225`), "
                        "or leave prepare.channels=all.")
    idx = np.flatnonzero(macro)
    channels = rec.channels.iloc[idx].reset_index(drop=True)
    rows, cols = channels["row"].to_numpy(int), channels["col"].to_numpy(int)
    if (rows >= 0).all() and (cols >= 0).all() and not (rows % 2).any() and not (cols % 2).any():
        channels = channels.assign(row=rows // 2, col=cols // 2)
    neural = np.ascontiguousarray(rec.neural[:, idx] if not is_lazy(rec.neural) else rec.neural[0:rec.n_samples, idx])
    meta = dataclasses.replace(rec.meta, grid_density="low", derived=list(rec.meta.derived) + [
        f"prepare.channels=ld_from_hb: the {len(idx)} macro contacts of the {rec.n_channels}-channel hybrid grid"])
    return rec.replace(neural=neural, channels=channels, meta=meta)


def prepare(rec: Recording, cfg: PrepareConfig | None = None, cache_dir: str | os.PathLike | None = None,
            *, use_cache: bool = True, chunk_mb: float | None = None) -> Prepared:
    """High gamma at 125 Hz plus aligned speech features and trial frames, cached on disk.

    Parameters
    ----------
    rec : Recording
        Raw (`neural_kind="raw"`, extracted with `cfg`) or high-gamma recording.
    cfg : PrepareConfig
    cache_dir : path, optional
        Cache root (default: `default_cache_dir()`).
    use_cache : bool
        False computes without reading or writing the cache.
    chunk_mb : float, optional
        Working memory of one chunk (MiB) when the raw array is on disk (`neurovox.io.LazyNeural`,
        streamed in chunks: see `extract_high_gamma`); default `NEUROVOX_CHUNK_MB`, else automatic.

    Returns
    -------
    Prepared (`from_cache=True` when it was read from the cache).
    """
    cfg = PrepareConfig() if cfg is None else cfg
    validate_type(rec, Recording, "rec")
    validate_type(cfg, PrepareConfig, "cfg")
    rec = select_channel_set(rec, cfg.channels)
    sha = recording_sha256(rec)
    if not use_cache:
        return _compute(rec, cfg, sha, chunk_mb)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    entry = root / f"prepared-{cache_key(rec, cfg, sha)}"
    if (entry / "tables.json").is_file() and (entry / "arrays.npz").is_file():
        try:
            return load_prepared(entry)
        except (OSError, ValueError, KeyError, json.JSONDecodeError):
            pass  # unreadable entry: recompute and overwrite
    prep = _compute(rec, cfg, sha, chunk_mb)
    save_prepared(prep, entry)
    return prep


def stream_input_description(rec: Recording, cfg: PrepareConfig) -> dict:
    """What a live stream must carry to feed a decoder trained on `rec` prepared with `cfg` (saved by
    `train decoder` as RUN/stream_input.json, read by `neurovox stream`): the kind and rate of the neural
    samples, the channel labels, and for raw voltage everything the causal high-gamma extraction needs (the
    channel table of the re-reference, the resolved mains frequency, the high-gamma settings)."""
    from neurovox.preprocess.highgamma import resolve_line_noise
    from neurovox.preprocess.reference import make_reference

    rec = select_channel_set(rec, cfg.channels)
    out = {"kind": rec.neural_kind, "rate_hz": float(rec.neural_sfreq_hz),
           "channel_names": rec.channels["name"].astype(str).tolist()}
    if rec.neural_kind == "raw":
        hg = cfg.high_gamma_config()
        line_hz, _ = resolve_line_noise(rec, hg, make_reference(rec.channels, hg.ecog_reference, hg.seeg_reference))
        cols = [c for c in ("name", "type", "group", "bad", "row", "col") if c in rec.channels.columns]
        out |= {"line_hz": float(line_hz), "high_gamma": dataclasses.asdict(hg),
                "channels": json.loads(rec.channels[cols].to_json(orient="records"))}
    return out
