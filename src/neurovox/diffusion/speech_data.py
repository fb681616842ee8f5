"""Speech for the prior: gather mel-dB streams from every source at hand and crop random windows.

Sources (`collect_speech`):
- audio files (.wav .flac .ogg .mp3, or directories of them, searched recursively);
- recordings readable by `neurovox.io.read_recording` (their microphone audio);
- the simulator's shipped multi-voice corpus (`neurovox.simulate.corpus.load_corpus`), laid out as
  a continuous stream like a session: words separated by random pauses, with background noise at
  a random level and a random gain, `corpus_copies` times with different draws.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from neurovox import dsp
from neurovox.diffusion.features import mel_db_from_audio, mel_db_to_unit
from neurovox.errors import DataError

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


def _from_path(path: Path) -> list[SpeechStream]:
    from neurovox.io import read_recording
    from neurovox.io.audio import load_wav

    if path.is_file() and path.suffix.lower() in AUDIO_SUFFIXES:
        audio, _ = load_wav(path, dsp.SAMPLE_RATE_HZ)
        return [SpeechStream(mel_db_from_audio(audio), str(path))]
    if path.is_file():
        rec = read_recording(path)
        return [SpeechStream(mel_db_from_audio(_audio_16k(rec.audio, rec.audio_sfreq_hz)), str(path))]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES + RECORDING_SUFFIXES)
        if not files:  # maybe a BIDS root or subject directory
            rec = read_recording(path)
            return [SpeechStream(mel_db_from_audio(_audio_16k(rec.audio, rec.audio_sfreq_hz)), str(path))]
        out: list[SpeechStream] = []
        for f in files:
            out.extend(_from_path(f))
        return out
    raise FileNotFoundError(2, "No such file or directory", str(path))


def corpus_streams(n_copies: int, rng: np.random.Generator, *, pause_s: tuple[float, float] = (0.3, 1.2),
                   noise_dbfs: tuple[float, float] = (-75.0, -45.0), gain_db: tuple[float, float] = (-6.0, 3.0)) -> list[SpeechStream]:
    """The shipped corpus as `n_copies` session-like streams (random order, pauses, noise and gain)."""
    from neurovox.simulate.corpus import load_corpus

    corpus = load_corpus()
    fs = dsp.SAMPLE_RATE_HZ
    streams = []
    for copy in range(n_copies):
        parts = []
        for i in rng.permutation(len(corpus.utterances)):
            u = corpus.utterances[int(i)]
            pause = np.zeros(int(rng.uniform(*pause_s) * fs), np.float32)
            parts += [pause, u.audio * np.float32(10 ** (rng.uniform(*gain_db) / 20))]
        audio = np.concatenate(parts + [np.zeros(int(pause_s[1] * fs), np.float32)])
        noise_rms = 10 ** (rng.uniform(*noise_dbfs) / 20)
        audio = audio + rng.standard_normal(len(audio)).astype(np.float32) * np.float32(noise_rms)
        streams.append(SpeechStream(mel_db_from_audio(audio), f"corpus (copy {copy})"))
    return streams


def collect_speech(paths: list[str | Path], *, use_corpus: bool = True, corpus_copies: int = 4,
                   rng: np.random.Generator | None = None) -> list[SpeechStream]:
    """All speech at hand as mel-dB streams. Raises DataError if there is none."""
    rng = np.random.default_rng(0) if rng is None else rng
    streams: list[SpeechStream] = []
    for p in paths:
        streams.extend(_from_path(Path(p)))
    if use_corpus:
        streams.extend(corpus_streams(corpus_copies, rng))
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
