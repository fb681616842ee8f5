"""Train / validation / test splits that never leak, and the training-only `Normalizer`.

Schemes (`make_split(prepared, scheme, fold, n_folds, seed)`):
- "flinker": test = the last `n_test_per_task` (10) trials of each task (by onset; at most half
  of a task's trials); `fold` unused.
- "kfold": trials sorted by onset cut into `n_folds` contiguous blocks; block `fold` is the test set.
- "lowo": leave one word out; fold k tests every trial of the k-th word (sorted labels).
- "swpd": 10-fold contiguous over frames (SWPD convention); block `fold` of the frames is the
  test span, test trials are those whose onset falls inside it.
Validation: a few (`val_fraction`, at least 1) training trials drawn with `seed`.

What a trial "occupies" (its extent): the frames its test window and neural lead read,
[onset - pre_onset - n_lead, onset - pre_onset + n_target), joined with its speech segment.
`test_frame_mask` marks the test trials' extents (swpd: the test span). Training windows
[start - n_lead, start + n_target) may not touch a test or validation frame (`train_start_mask`),
which is the guard of one window length around the held-out frames. `train_frame_mask` (all frames
neither test nor validation) is what the `Normalizer` is fitted on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neurovox.errors import ConfigError, DataError
from neurovox.utils.check import check_option, check_range

SCHEMES = ("flinker", "kfold", "lowo", "swpd")
N_TARGET_FRAMES = 128
N_LEAD_FRAMES = 16
PRE_ONSET_FRAMES = 32


@dataclass
class SplitConfig:
    """Which trials train, validate and test (`make_split`); the `split` section of every training config
    that holds out test trials (speech, decoder, likelihood runs): runs that are meant to be scored together
    must use the same scheme, fold and n_folds (`neurovox.preprocess.leakage` checks it)."""

    scheme: str = "flinker"              # "flinker" (last 10 trials of each task), "kfold", "lowo", "swpd"
    fold: int = 0                        # fold index for kfold / lowo / swpd
    n_folds: int = 10                    # folds for kfold / swpd
    seed: int = 0                        # seed of the validation-trial draw

    def __post_init__(self) -> None:
        check_option("split.scheme", self.scheme, SCHEMES)
        check_range("split.fold", self.fold, 0, None)


@dataclass
class Split:
    """Which trials and frames each part may use."""

    scheme: str
    fold: int
    n_folds: int
    train_trials: np.ndarray        # (n_train,) int64 trial rows
    val_trials: np.ndarray          # (n_val,) int64
    test_trials: np.ndarray         # (n_test,) int64
    test_frame_mask: np.ndarray     # (n_frames,) bool, frames held out for testing
    val_frame_mask: np.ndarray      # (n_frames,) bool, frames held out for validation
    n_target_frames: int = N_TARGET_FRAMES
    n_lead_frames: int = N_LEAD_FRAMES
    pre_onset_frames: int = PRE_ONSET_FRAMES

    @property
    def train_frame_mask(self) -> np.ndarray:
        """Frames the model (and the Normalizer) may learn from, shape (n_frames,) bool."""
        return ~(self.test_frame_mask | self.val_frame_mask)

    def train_start_mask(self) -> np.ndarray:
        """Allowed training-window starts s: [s - n_lead, s + n_target) inside the recording and free of
        test/validation frames, shape (n_frames,) bool."""
        return window_start_mask(~self.train_frame_mask, self.n_lead_frames, self.n_target_frames)

    def __repr__(self) -> str:
        return (f"<Split {self.scheme} fold {self.fold}/{self.n_folds} | train {len(self.train_trials)}, "
                f"val {len(self.val_trials)}, test {len(self.test_trials)} trials; "
                f"{int(self.test_frame_mask.sum())} test frames>")


def window_start_mask(blocked: np.ndarray, n_lead: int, n_target: int) -> np.ndarray:
    """Starts s whose window [s - n_lead, s + n_target) lies in the recording and touches no blocked frame."""
    n = len(blocked)
    csum = np.concatenate([[0], np.cumsum(blocked.astype(np.int64))])
    s = np.arange(n)
    lo, hi = s - n_lead, s + n_target
    ok = (lo >= 0) & (hi <= n)
    lo_c, hi_c = np.clip(lo, 0, n), np.clip(hi, 0, n)
    return ok & (csum[hi_c] - csum[lo_c] == 0)


def trial_extent_mask(trials, rows: np.ndarray, n_frames: int, n_target: int, n_lead: int, pre_onset: int) -> np.ndarray:
    """Frames occupied by the given trials (test window + lead, and the speech segment)."""
    mask = np.zeros(n_frames, dtype=bool)
    on = trials["onset_frame"].to_numpy(np.int64)
    off = trials["offset_frame"].to_numpy(np.int64)
    for r in rows:
        a = min(on[r] - pre_onset - n_lead, on[r])
        b = max(on[r] - pre_onset + n_target, off[r])
        mask[max(a, 0): max(min(b, n_frames), 0)] = True
    return mask


def split_from_config(prepared, split_cfg: "SplitConfig | dict | None", *, n_target_frames: int,
                      n_lead_frames: int, pre_onset_frames: int = PRE_ONSET_FRAMES) -> Split:
    """The split a run trains (or was trained) with: its `SplitConfig`, or the `split` section of its saved
    config.yaml. Keys missing from an old config take `SplitConfig`'s defaults (defined only there)."""
    if not isinstance(split_cfg, SplitConfig):
        from neurovox.config import from_dict

        split_cfg = from_dict(SplitConfig, dict(split_cfg or {}), prefix="split.")
    return make_split(prepared, split_cfg.scheme, fold=split_cfg.fold, n_folds=split_cfg.n_folds, seed=split_cfg.seed,
                      n_target_frames=n_target_frames, n_lead_frames=n_lead_frames, pre_onset_frames=pre_onset_frames)


def _pick_val(candidates: np.ndarray, val_fraction: float, rng: np.random.Generator) -> np.ndarray:
    if len(candidates) < 3 or val_fraction <= 0:
        return np.zeros(0, dtype=np.int64)
    n_val = max(1, int(round(val_fraction * len(candidates))))
    return np.sort(rng.choice(candidates, size=n_val, replace=False)).astype(np.int64)


def make_split(prepared, scheme: str = "flinker", fold: int = 0, n_folds: int = 10, seed: int = 0, *,
               n_test_per_task: int = 10, val_fraction: float = 0.1, n_target_frames: int = N_TARGET_FRAMES,
               n_lead_frames: int = N_LEAD_FRAMES, pre_onset_frames: int = PRE_ONSET_FRAMES) -> Split:
    """Split a Prepared recording (see module docstring).

    Parameters
    ----------
    prepared : Prepared
    scheme : {"flinker", "kfold", "lowo", "swpd"}
    fold : int
        Which fold is the test set (ignored by "flinker").
    n_folds : int
        Number of folds for "kfold" and "swpd" (the SWPD convention is 10); "lowo" uses one fold per word.
    seed : int
        Draws the validation trials.
    """
    check_option("scheme", scheme, SCHEMES)
    trials = prepared.trials
    n_trials, n_frames = len(trials), prepared.n_frames
    order = np.argsort(trials["onset_frame"].to_numpy(), kind="stable")
    rng = np.random.default_rng(seed)
    geom = dict(n_target=n_target_frames, n_lead=n_lead_frames, pre_onset=pre_onset_frames)
    if scheme == "lowo":
        words = sorted(set(trials["label"].astype(str)))
        n_folds = len(words)
    if scheme != "flinker":
        check_range("n_folds", n_folds, 2, None)
        if not 0 <= fold < n_folds:
            raise ConfigError(f"fold must be in 0..{n_folds - 1} for scheme {scheme!r} with n_folds={n_folds}, got {fold}.")
    where = getattr(getattr(prepared, "meta", None), "source_path", "") or "the recording"
    if scheme == "flinker":
        counts = trials["task"].astype(str).value_counts(sort=False).to_dict()
        short = {task: n for task, n in counts.items() if n < 2}
        if short:   # such a task would get zero test trials (at most half of a task's trials are held out)
            raise DataError(f"the flinker split holds out the last {n_test_per_task} trials of each task (at most "
                            f"half), so every task needs at least 2 trials, but in {where} task(s) {short} have fewer "
                            f"(trials per task: {counts}). Use split.scheme=kfold, or drop those trials.")
        test = []
        for task in dict.fromkeys(trials["task"].astype(str)):
            rows = order[trials["task"].astype(str).to_numpy()[order] == task]
            k = min(n_test_per_task, len(rows) // 2)
            test.extend(rows[len(rows) - k:])
        test = np.sort(np.asarray(test, dtype=np.int64))
        test_mask = trial_extent_mask(trials, test, n_frames, **geom)
    elif scheme == "kfold":
        if n_trials < n_folds:
            raise ConfigError(f"kfold with n_folds={n_folds} needs at least {n_folds} trials, got {n_trials}.")
        test = np.sort(np.array_split(order, n_folds)[fold]).astype(np.int64)
        test_mask = trial_extent_mask(trials, test, n_frames, **geom)
    elif scheme == "lowo":
        test = np.flatnonzero(trials["label"].astype(str).to_numpy() == words[fold]).astype(np.int64)
        test_mask = trial_extent_mask(trials, test, n_frames, **geom)
    else:  # swpd
        bounds = np.linspace(0, n_frames, n_folds + 1).round().astype(np.int64)
        test_mask = np.zeros(n_frames, dtype=bool)
        test_mask[bounds[fold]: bounds[fold + 1]] = True
        on = trials["onset_frame"].to_numpy(np.int64)
        test = np.flatnonzero(test_mask[on]).astype(np.int64)
    if not test_mask.any():
        raise DataError(f"fold {fold} of the {scheme!r} split of {where} has no test trials or frames ({n_trials} "
                        f"trials, {n_frames} frames, n_folds={n_folds}); use fewer folds or another scheme.")
    # training candidates: trials whose extent does not touch a test frame
    rest = np.setdiff1d(np.arange(n_trials), test)
    free = np.array([not (trial_extent_mask(trials, [r], n_frames, **geom) & test_mask).any() for r in rest], dtype=bool)
    candidates = rest[free] if len(rest) else rest
    val = _pick_val(candidates, val_fraction, rng)
    val_mask = trial_extent_mask(trials, val, n_frames, **geom) & ~test_mask
    train = np.setdiff1d(candidates, val).astype(np.int64)
    return Split(scheme=scheme, fold=int(fold), n_folds=int(n_folds if scheme != "flinker" else 1),
                 train_trials=train, val_trials=val, test_trials=test, test_frame_mask=test_mask,
                 val_frame_mask=val_mask, n_target_frames=n_target_frames, n_lead_frames=n_lead_frames,
                 pre_onset_frames=pre_onset_frames)


def split_trials(trials, n_frames: int, scheme: str = "flinker", fold: int = 0, n_folds: int = 10, seed: int = 0, *,
                 frame_rate_hz: float = 125.0, where: str = "") -> Split:
    """`make_split` from a Recording's trial table (onset_s, offset_s, label, task) and a frame count, without
    preparing the recording: the split needs nothing else. Trial membership (which trials are test trials) is
    the same as `make_split` on the prepared recording gives (flinker, kfold, lowo: from the trial order and
    labels; swpd: from the onsets' position in the recording); at another `frame_rate_hz` (100 Hz) the test
    frames are the same spans in seconds."""
    from types import SimpleNamespace

    import pandas as pd

    from neurovox.preprocess.speech import trial_frames

    on, off = trial_frames(trials, n_frames, frame_rate_hz)
    table = pd.DataFrame({"onset_frame": on, "offset_frame": off, "label": trials["label"].astype(str).to_numpy(),
                          "task": trials["task"].astype(str).to_numpy()})
    light = SimpleNamespace(trials=table, n_frames=int(n_frames), meta=SimpleNamespace(source_path=where))
    scale = frame_rate_hz / 125.0   # window geometry in seconds, as at 125 Hz
    return make_split(light, scheme, fold, n_folds, seed, n_target_frames=max(1, round(N_TARGET_FRAMES * scale)),
                      n_lead_frames=round(N_LEAD_FRAMES * scale), pre_onset_frames=round(PRE_ONSET_FRAMES * scale))


class Normalizer:
    """Per-channel z-score fitted on training frames only, then clipped at +-`clip_sd`.

    Examples
    --------
    >>> norm = Normalizer().fit(prepared.neural, split.train_frame_mask)
    >>> z = norm.transform(prepared.neural)        # (n_frames, n_channels) float32
    """

    def __init__(self, clip_sd: float = 10.0) -> None:
        self.clip_sd = float(clip_sd)
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None
        self.n_fit_frames = 0

    def fit(self, neural: np.ndarray, frame_mask: np.ndarray) -> "Normalizer":
        """Statistics of `neural[frame_mask]`; neural (n_frames, n_channels), frame_mask (n_frames,) bool."""
        neural = np.asarray(neural)
        frame_mask = np.asarray(frame_mask, dtype=bool)
        if frame_mask.shape != (neural.shape[0],):
            raise DataError(f"frame_mask must have shape ({neural.shape[0]},) to match neural {neural.shape}, "
                            f"got {frame_mask.shape}.")
        if frame_mask.sum() < 2:
            raise DataError(f"Normalizer.fit needs at least 2 training frames, got {int(frame_mask.sum())}.")
        x = neural[frame_mask].astype(np.float64)
        self.mean = x.mean(axis=0)
        std = x.std(axis=0)
        self.std = np.where(std > 1e-12, std, 1.0)  # flat (e.g. bad) channels: leave the scale alone
        self.n_fit_frames = int(frame_mask.sum())
        return self

    def transform(self, neural: np.ndarray) -> np.ndarray:
        """(x - mean) / std clipped to +-clip_sd, shape as `neural` (..., n_channels), float32."""
        if self.mean is None:
            raise DataError("Normalizer is not fitted: call .fit(neural, train_frame_mask) or load a state dict.")
        neural = np.asarray(neural)
        if neural.shape[-1] != len(self.mean):
            raise DataError(f"Normalizer was fitted on {len(self.mean)} channels, got data with {neural.shape[-1]}.")
        z = (neural - self.mean) / self.std
        if self.clip_sd > 0:
            z = np.clip(z, -self.clip_sd, self.clip_sd)
        return z.astype(np.float32)

    def state_dict(self) -> dict:
        return {"mean": None if self.mean is None else self.mean.tolist(),
                "std": None if self.std is None else self.std.tolist(),
                "clip_sd": self.clip_sd, "n_fit_frames": self.n_fit_frames}

    @classmethod
    def from_state_dict(cls, state: dict) -> "Normalizer":
        norm = cls(clip_sd=float(state.get("clip_sd", 10.0)))
        if state.get("mean") is not None:
            norm.mean = np.asarray(state["mean"], dtype=np.float64)
            norm.std = np.asarray(state["std"], dtype=np.float64)
        norm.n_fit_frames = int(state.get("n_fit_frames", 0))
        return norm

    def __repr__(self) -> str:
        n = "unfitted" if self.mean is None else f"{len(self.mean)} channels from {self.n_fit_frames} frames"
        return f"<Normalizer {n}, clip +-{self.clip_sd:g} sd>"


def train_speech_frames(prepared, split) -> np.ndarray:
    """Speech-segment frames of the split's training trials, shape (n_frames,) bool."""
    on = prepared.trials["onset_frame"].to_numpy(np.int64)
    off = prepared.trials["offset_frame"].to_numpy(np.int64)
    mask = np.zeros(prepared.n_frames, dtype=bool)
    for r in split.train_trials:
        mask[on[r]:off[r]] = True
    mask &= split.train_frame_mask
    if mask.sum() < 2:
        raise DataError(f"the split {split!r} has {int(mask.sum())} training speech frames; the no-neural baselines "
                        "and the tilt-removed PCC need the training trials' speech. Use a split with training trials.")
    return mask


def train_speech_mean_db(prepared, split) -> np.ndarray:
    """Mean mel dB of each bin over the training trials' speech frames, shape (n_mels,) float64."""
    return np.asarray(prepared.mel_db, dtype=np.float64)[train_speech_frames(prepared, split)].mean(axis=0)
