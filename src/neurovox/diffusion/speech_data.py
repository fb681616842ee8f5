"""Speech for the prior: gather mel-dB streams from every source at hand and crop random windows.

Sources (`collect_speech`):
- audio files (.wav .flac .ogg .mp3, or directories of them, searched recursively);
- recordings readable by `neurovox.io.read_recording` (their microphone audio), **training trials only**:
  the frames of the test trials of a split (default flinker, `recording_split`) are cut out, so a
  prior never hears the audio that a decoder of the same recording is scored on;
- the simulator's shipped multi-voice corpus (`neurovox.simulate.corpus.load_corpus`), laid out as
  a continuous stream like a session: words separated by random pauses, with background noise at
  a random level and a random gain, `corpus_copies` times with different draws. `exclude_voices`
  leaves voices out: a simulated participant speaks one corpus voice, and a prior that decodes it
  must not have heard that voice.

Every source is described by a record (`neurovox.preprocess.leakage`: path, SHA-256, trials, voices),
which the prior run keeps in run.json and the likelihood stage and `evaluate` check.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from neurovox import dsp
from neurovox.diffusion.features import mel_db_from_audio, mel_db_to_unit
from neurovox.errors import ConfigError, DataError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
RECORDING_SUFFIXES = (".h5", ".hdf5", ".mat", ".nwb")


@dataclass
class SpeechStream:
    """One continuous mel-dB stream (n_frames, 80) and where it came from."""

    mel_db: np.ndarray
    source: str


def _audio_16k(audio: np.ndarray, sfreq_hz: float) -> np.ndarray:
    from neurovox.io.audio import resample_audio

    return resample_audio(np.asarray(audio, np.float32), sfreq_hz, dsp.SAMPLE_RATE_HZ)


MIN_SEGMENT_FRAMES = 16   # training segments of a recording shorter than this (0.13 s) are dropped


@dataclass
class RecordingSplit:
    """Which trials of a recording given to the prior are test trials (their frames are never used)."""

    scheme: str = "flinker"
    fold: int = 0
    n_folds: int = 10


def _recording_streams(rec, where: str, split_cfg: RecordingSplit) -> tuple[list[SpeechStream], dict]:
    """The 16 kHz audio of a recording outside its split's test frames, as one stream per contiguous
    stretch, and the source record."""
    from neurovox.preprocess.leakage import simulated_voice, split_dict
    from neurovox.preprocess.prepared import recording_sha256
    from neurovox.preprocess.splits import split_trials

    audio = _audio_16k(rec.audio, rec.audio_sfreq_hz)
    n_frames = len(audio) // dsp.HOP_SAMPLES
    if rec.neural_kind == "high_gamma":  # prepare() keeps the frames both clocks cover
        n_frames = min(n_frames, int(rec.neural.shape[0] * dsp.FRAME_RATE_HZ / rec.neural_sfreq_hz + 1e-9))
    split = split_trials(rec.trials, n_frames, split_cfg.scheme, split_cfg.fold, split_cfg.n_folds, where=where)
    keep = ~split.test_frame_mask
    edges = np.flatnonzero(np.diff(np.concatenate([[0], keep.astype(np.int8), [0]])))
    streams = []
    for a, b in zip(edges[::2], edges[1::2]):
        if b - a >= MIN_SEGMENT_FRAMES:
            streams.append(SpeechStream(mel_db_from_audio(audio[a * dsp.HOP_SAMPLES: b * dsp.HOP_SAMPLES]),
                                        f"{where} (frames {a}-{b})"))
    n = len(rec.trials)
    test = np.asarray(split.test_trials, dtype=np.int64)
    record = {"kind": "recording", "path": where, "file_sha256": recording_sha256(rec), "audio_sha256": None,
              "participant_id": rec.meta.participant_id, "voice": simulated_voice(rec.meta, where), "n_trials": n,
              "split": split_dict(split), "test_trials": test.tolist(),
              "trained_trials": np.setdiff1d(np.arange(n), test).tolist(),
              "n_frames_used": int(sum(b - a for a, b in zip(edges[::2], edges[1::2]) if b - a >= MIN_SEGMENT_FRAMES))}
    return streams, record


def _audio_record(path: Path) -> dict:
    from neurovox.utils.files import sha256_file

    return {"kind": "audio", "path": str(path.resolve()), "file_sha256": sha256_file(path)}


def _from_path(path: Path, split_cfg: RecordingSplit) -> tuple[list[SpeechStream], list[dict]]:
    from neurovox.io import read_recording
    from neurovox.io.audio import load_wav

    if path.is_file() and path.suffix.lower() in AUDIO_SUFFIXES:
        audio, _ = load_wav(path, dsp.SAMPLE_RATE_HZ)
        return [SpeechStream(mel_db_from_audio(audio), str(path))], [_audio_record(path)]
    if path.is_file():
        streams, record = _recording_streams(read_recording(path), str(path.resolve()), split_cfg)
        return streams, [record]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES + RECORDING_SUFFIXES)
        if not files:  # maybe a BIDS root or subject directory
            streams, record = _recording_streams(read_recording(path), str(path.resolve()), split_cfg)
            return streams, [record]
        out: list[SpeechStream] = []
        records: list[dict] = []
        for f in files:
            s, r = _from_path(f, split_cfg)
            out.extend(s)
            records.extend(r)
        return out, records
    raise FileNotFoundError(2, "No such file or directory", str(path))


def corpus_voices(exclude_voices: tuple[str, ...] | list[str] = ()) -> list[str]:
    """The shipped corpus's voices minus `exclude_voices` (ConfigError naming the voices for an unknown one)."""
    from neurovox.simulate.corpus import load_corpus

    voices = list(load_corpus().voices)
    unknown = [v for v in exclude_voices if v not in voices]
    if unknown:
        raise ConfigError(f"prior.exclude_voices names {unknown}, which the shipped corpus does not have; its voices "
                          f"are {voices}.")
    return [v for v in voices if v not in set(exclude_voices)]


def corpus_streams(n_copies: int, rng: np.random.Generator, *, pause_s: tuple[float, float] = (0.3, 1.2),
                   noise_dbfs: tuple[float, float] = (-75.0, -45.0), gain_db: tuple[float, float] = (-6.0, 3.0),
                   exclude_voices: tuple[str, ...] | list[str] = ()) -> list[SpeechStream]:
    """The shipped corpus (without `exclude_voices`) as `n_copies` session-like streams (random order, pauses,
    noise and gain)."""
    from neurovox.simulate.corpus import load_corpus

    corpus = load_corpus()
    keep = set(corpus_voices(exclude_voices))
    utterances = [u for u in corpus.utterances if u.voice in keep]
    if not utterances:
        return []
    fs = dsp.SAMPLE_RATE_HZ
    streams = []
    for copy in range(n_copies):
        parts = []
        for i in rng.permutation(len(utterances)):
            u = utterances[int(i)]
            pause = np.zeros(int(rng.uniform(*pause_s) * fs), np.float32)
            parts += [pause, u.audio * np.float32(10 ** (rng.uniform(*gain_db) / 20))]
        audio = np.concatenate(parts + [np.zeros(int(pause_s[1] * fs), np.float32)])
        noise_rms = 10 ** (rng.uniform(*noise_dbfs) / 20)
        audio = audio + rng.standard_normal(len(audio)).astype(np.float32) * np.float32(noise_rms)
        streams.append(SpeechStream(mel_db_from_audio(audio), f"corpus (copy {copy})"))
    return streams


def collect_speech(paths: list[str | Path], *, use_corpus: bool = True, corpus_copies: int = 4,
                   rng: np.random.Generator | None = None, exclude_voices: tuple[str, ...] | list[str] = (),
                   split: RecordingSplit | None = None,
                   sources: list[dict] | None = None) -> list[SpeechStream]:
    """All speech at hand as mel-dB streams (recordings: outside the test trials of `split`, default flinker).
    Raises DataError if there is none. `sources`, when given, receives one record per source (see
    `neurovox.preprocess.leakage`)."""
    rng = np.random.default_rng(0) if rng is None else rng
    split = split or RecordingSplit()
    records = sources if sources is not None else []
    streams: list[SpeechStream] = []
    for p in paths:
        s, r = _from_path(Path(p), split)
        streams.extend(s)
        records.extend(r)
    if use_corpus:
        streams.extend(corpus_streams(corpus_copies, rng, exclude_voices=exclude_voices))
        records.append({"kind": "corpus", "voices": corpus_voices(exclude_voices),
                        "excluded_voices": list(exclude_voices), "copies": int(corpus_copies)})
    if not streams:
        raise DataError("No speech to train the prior on: pass --speech FILE_OR_DIR (audio files or recordings) "
                        "or enable the shipped corpus (prior.use_corpus=true).")
    return streams


def split_streams(streams: list[SpeechStream], val_fraction: float, n_frames: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Hold out the last `val_fraction` of every stream (contiguous, so no window straddles both)."""
    train, val = [], []
    for s in streams:
        n = s.mel_db.shape[0]
        n_val = int(round(n * val_fraction))
        if n_val >= n_frames and n - n_val >= n_frames:
            train.append(s.mel_db[: n - n_val])
            val.append(s.mel_db[n - n_val:])
        else:
            train.append(s.mel_db)
    return train, val


class MelWindows(torch.utils.data.Dataset):
    """Random `n_frames` crops of mel streams as unit-scale images (1, 80, n_frames).

    Streams shorter than a window are padded with silence. Crops are drawn from a numpy Generator
    seeded by `seed` and the item index, so an epoch is reproducible; `fixed=True` gives a fixed
    set of evenly spaced crops (validation).
    """

    def __init__(self, streams: list[np.ndarray], n_frames: int, n_windows: int, *, seed: int = 0, fixed: bool = False) -> None:
        if not streams:
            raise DataError("MelWindows needs at least one mel stream.")
        self.n_frames = int(n_frames)
        pad = lambda m: m if m.shape[0] >= n_frames else np.concatenate(  # noqa: E731
            [m, np.full((n_frames - m.shape[0], m.shape[1]), -100.0, np.float32)])
        self.streams = [mel_db_to_unit(pad(np.asarray(m, np.float32))) for m in streams]
        lengths = np.array([m.shape[0] - n_frames + 1 for m in self.streams], dtype=np.float64)
        self.weights = lengths / lengths.sum()
        self.n_windows = int(n_windows)
        self.seed = int(seed)
        self.epoch = 0
        self.fixed = fixed
        if fixed:
            g = np.random.default_rng(seed)
            self._fixed = [(int(i), int(g.integers(0, self.streams[i].shape[0] - n_frames + 1)))
                           for i in g.choice(len(self.streams), size=n_windows, p=self.weights)]

    @property
    def n_total_frames(self) -> int:
        return int(sum(m.shape[0] for m in self.streams))

    def __len__(self) -> int:
        return self.n_windows

    def __getitem__(self, idx: int) -> torch.Tensor:
        if self.fixed:
            s, start = self._fixed[idx]
        else:
            g = np.random.default_rng((self.seed, self.epoch, idx))
            s = int(g.choice(len(self.streams), p=self.weights))
            start = int(g.integers(0, self.streams[s].shape[0] - self.n_frames + 1))
        win = self.streams[s][start:start + self.n_frames]          # (n_frames, 80)
        return torch.from_numpy(np.ascontiguousarray(win.T))[None]  # (1, 80, n_frames)
