"""PyTorch window datasets over a `Prepared` recording and a `Split`, and a loader.

Windows (Flinker convention): `n_target_frames` (128) frames of speech targets, preceded by
`n_lead_frames` (16) extra frames of neural lead; neural frame k + n_lead is simultaneous with
target frame k. A window starting at target frame s reads neural frames [s - n_lead, s + n_target).

- train: trial-based schemes draw, at every access, a random start around the trial: the window
  contains the whole speech segment when it fits (s in [offset - n_target, onset]), otherwise
  s in [onset, offset - n_target]; starts that would touch a test/validation frame are excluded
  (`Split.train_start_mask`). SWPD: random allowed starts anywhere in the training frames
  (n_train_frames // n_target items per epoch), `trial` = -1.
- val / test: one window per trial starting `pre_onset_frames` (32) before speech onset (clamped
  into the recording). SWPD test: consecutive windows tiling the test span, the last one moved back to
  end at the span's end, so that no scored frame lies outside it (`swpd_test_starts`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from neurovox import dsp
from neurovox.errors import DataError
from neurovox.utils.check import check_option

PARTS = ("train", "val", "test")


class WindowDataset(Dataset):
    """Aligned (neural window, speech targets, metadata) items; see the module docstring.

    Parameters
    ----------
    prepared : Prepared
    split : Split
    normalizer : Normalizer
        Fitted on the split's training frames; applied to the whole neural array once.
    part : {"train", "val", "test"}
    n_target_frames, n_lead_frames : int
    generator : torch.Generator, optional
        Draws the random training starts (required for reproducible training windows).

    Items are dicts of tensors: neural (n_lead + n_target, n_channels) float32, audio
    (n_target * 128,), spec_power (n_target, 256), mel_db (n_target, 80), f0_hz, voiced,
    intensity_db (n_target,), formants_hz (n_target, 6), speech_mask (n_target,) bool,
    trial (int64 scalar; -1 for SWPD training windows), start_frame (int64 scalar).
    """

    def __init__(self, prepared, split, normalizer, part: str = "train", n_target_frames: int = 128,
                 n_lead_frames: int = 16, generator: torch.Generator | None = None) -> None:
        check_option("part", part, PARTS, error=DataError)
        if n_target_frames + n_lead_frames > prepared.n_frames:
            raise DataError(f"windows of {n_lead_frames}+{n_target_frames} frames do not fit a recording of "
                            f"{prepared.n_frames} frames.")
        if (n_target_frames, n_lead_frames) != (split.n_target_frames, split.n_lead_frames):
            raise DataError(f"the split was made for windows of {split.n_lead_frames}+{split.n_target_frames} frames "
                            f"but the dataset asks for {n_lead_frames}+{n_target_frames}; pass the same "
                            "n_target_frames/n_lead_frames to make_split.")
        self.prepared, self.split, self.part = prepared, split, part
        self.n_target, self.n_lead = int(n_target_frames), int(n_lead_frames)
        self.generator = generator
        self.neural = torch.from_numpy(normalizer.transform(prepared.neural))           # (n_frames, n_channels)
        self._audio = torch.from_numpy(np.ascontiguousarray(prepared.audio, dtype=np.float32))
        self._frames = {k: torch.from_numpy(np.ascontiguousarray(getattr(prepared, k)))
                        for k in ("spec_power", "mel_db", "f0_hz", "voiced", "intensity_db", "formants_hz")}
        tr = prepared.trials
        self._on = tr["onset_frame"].to_numpy(np.int64)
        self._off = tr["offset_frame"].to_numpy(np.int64)
        n = prepared.n_frames
        speech = np.zeros(n + 1, dtype=np.int64)
        np.add.at(speech, self._on, 1)
        np.add.at(speech, self._off, -1)
        self._any_speech = torch.from_numpy(np.cumsum(speech)[:n] > 0)
        self.n_dropped = 0
        lo_ok, hi_ok = self.n_lead, n - self.n_target
        if part == "train":
            allowed = split.train_start_mask()
            if split.scheme == "swpd":
                self._free = np.flatnonzero(allowed)
                if len(self._free) == 0:
                    raise DataError("no training window fits outside the SWPD test span; use fewer, longer folds.")
                self._trials = np.full(max(1, int(split.train_frame_mask.sum()) // self.n_target), -1, dtype=np.int64)
                self._cands = None
            else:
                trials, cands = [], []
                for r in split.train_trials:
                    c = self._train_candidates(int(r), allowed)
                    if len(c):
                        trials.append(int(r))
                        cands.append(c)
                self.n_dropped = len(split.train_trials) - len(trials)
                if not trials:
                    raise DataError(f"no training trial of split {split!r} leaves room for a window that avoids "
                                    "the test frames; use a split with more training trials or shorter windows.")
                self._trials, self._cands = np.asarray(trials, dtype=np.int64), cands
            self._starts = None
        else:
            rows = split.val_trials if part == "val" else split.test_trials
            if part == "test" and split.scheme == "swpd":
                self._starts = swpd_test_starts(split.test_frame_mask, self.n_target, self.n_lead)
                self._trials = np.full(len(self._starts), -1, dtype=np.int64)
            else:
                self._trials = np.asarray(rows, dtype=np.int64)
                self._starts = np.clip(self._on[self._trials] - split.pre_onset_frames, lo_ok, hi_ok)

    def _train_candidates(self, r: int, allowed: np.ndarray) -> np.ndarray:
        on, off = self._on[r], self._off[r]
        a, b = (off - self.n_target, on) if off - on <= self.n_target else (on, off - self.n_target)
        idx = np.arange(max(a, 0), min(b, len(allowed) - 1) + 1)
        c = idx[allowed[idx]]
        if len(c) == 0:  # fall back to any allowed window overlapping the speech segment
            idx = np.arange(max(on - self.n_target + 1, 0), min(off - 1, len(allowed) - 1) + 1)
            c = idx[allowed[idx]]
        return c

    def __len__(self) -> int:
        return len(self._trials)

    def start_frame(self, i: int) -> int:
        """Start (first target frame) of item i; training items draw a new random start each call."""
        if self._starts is not None:
            return int(self._starts[i])
        pool = self._free if self._cands is None else self._cands[i]
        k = int(torch.randint(len(pool), (1,), generator=self.generator).item())
        return int(pool[k])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if not 0 <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} windows")
        s = self.start_frame(i)
        e = s + self.n_target
        r = int(self._trials[i])
        item = {"neural": self.neural[s - self.n_lead: e],
                "audio": self._audio[s * dsp.HOP_SAMPLES: e * dsp.HOP_SAMPLES]}
        for k, v in self._frames.items():
            item[k] = v[s:e]
        if r >= 0:
            f = torch.arange(s, e)
            item["speech_mask"] = (f >= int(self._on[r])) & (f < int(self._off[r]))
        else:
            item["speech_mask"] = self._any_speech[s:e]
        item["trial"] = torch.tensor(r, dtype=torch.int64)
        item["start_frame"] = torch.tensor(s, dtype=torch.int64)
        return item

    def __repr__(self) -> str:
        return (f"<WindowDataset {self.part} | {len(self)} windows of {self.n_lead}+{self.n_target} frames x "
                f"{self.neural.shape[1]} ch, split {self.split.scheme}>")


def swpd_test_starts(test_frame_mask: np.ndarray, n_target: int, n_lead: int) -> np.ndarray:
    """Starts of the SWPD test windows: consecutive windows of `n_target` frames tiling the test span
    [a, b), every scored (target) frame inside the span.

    Tiling from `a` in steps of `n_target` would let the last window run up to n_target - 1 frames past
    `b` into the training frames (about 3 % of the scored frames with 10 folds of a 40 min recording), so
    the last window is moved back to end at `b` instead: it overlaps its predecessor, whose shared frames
    are then scored twice, but no training frame is ever scored. The first window also starts late enough
    for its neural lead to fit in the recording (the lead may read frames before the span: they are
    input, not targets). A span shorter than one window cannot be scored: DataError.
    """
    span = np.flatnonzero(test_frame_mask)
    a, b = int(span[0]), int(span[-1]) + 1
    first, last = max(a, n_lead), min(b, len(test_frame_mask)) - n_target
    if last < first:
        raise DataError(f"the SWPD test span [{a}, {b}) of {b - a} frames holds no whole window of {n_target} target "
                        f"frames (+{n_lead} lead); use fewer folds (split.n_folds) or shorter windows.")
    starts = np.arange(first, last + 1, n_target)
    if starts[-1] != last:
        starts = np.append(starts, last)
    return starts.astype(np.int64)


def stack_windows(dataset: WindowDataset) -> dict[str, np.ndarray]:
    """All items of a (val/test) dataset stacked into arrays, e.g. neural (n, n_lead + n_target, n_channels)."""
    items = [dataset[i] for i in range(len(dataset))]
    return {k: torch.stack([it[k] for it in items]).numpy() for k in items[0]}


def make_loader(dataset: Dataset, batch_size: int, shuffle: bool = False,
                generator: torch.Generator | None = None) -> DataLoader:
    """DataLoader over a WindowDataset.

    num_workers = 0 on purpose: an item is a handful of slices of in-memory tensors, so worker
    processes only add process start-up, pickling and IPC per batch, and each worker would copy the
    dataset's random generator (identical training starts in every worker). Measured on the shared
    2-core machine (benchmarks/bench_preprocess.py, "loader" rows, one epoch of 42 windows of
    144 frames x 64 channels, batch 8): 3.5 ms per batch with num_workers=0 versus 81 ms with 2
    workers. Both cores are better left to torch's intra-op threads in the training step.
    """
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator, num_workers=0,
                      drop_last=False)
