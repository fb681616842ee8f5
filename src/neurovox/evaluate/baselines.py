"""No-neural baselines: what a prediction scores without looking at the brain.

A decoder is only worth its metric if it beats predictions that never see the neural data. Two
such predictions are built from the TRAINING trials of the split (never a test frame) and scored
exactly like a decoder (every metric, bootstrap CI, audio by Griffin-Lim):

- ``"constant_spectrum"``: the mean mel spectrum of the training trials' speech frames, repeated in
  every frame. What any output gets for sounding like average speech. On dB mel it already scores
  a per-trial PCC of ~0.65, because that PCC is dominated by the spectral tilt of speech.
- ``"onset_mean"``: the onset-aligned mean of the training trials' target windows -- each training
  trial's window cut exactly like a test window (starting `pre_onset_frames` before its speech
  onset), averaged -- placed at every trial onset of the recording, with the mean non-speech
  spectrum of the training frames in between. What an output gets when it is handed the trial
  timing, which a decoder has to find in the brain. This is THE no-neural baseline: a decoder that
  beats it decoded content beyond when speech happens. For Flinker-style test windows (one per
  trial, starting `pre_onset_frames` before onset) its prediction is the mean training window itself.

`seen_words` (is a test trial's word among the training words) lives here too: a statistic of the training
side. `train_speech_mean_db` (the per-bin mean that the tilt-removed PCC subtracts) lives in
`neurovox.preprocess.splits`, beside the split it reads, so that training can use it without this layer.
"""

from __future__ import annotations

import numpy as np

from neurovox.errors import DataError
from neurovox.preprocess.splits import train_speech_mean_db

BASELINES = ("constant_spectrum", "onset_mean")
BASELINE_INFO = {
    "constant_spectrum": ("constant spectrum", "mean mel spectrum of the training speech frames in every frame"),
    "onset_mean": ("onset-aligned mean", "mean training window aligned on speech onset, placed at each trial's "
                                         "onset (the decoder is not told the timing; this baseline is)"),
}


def onset_template(prepared, split) -> np.ndarray:
    """Mean training target window aligned on speech onset, shape (n_target_frames, n_mels) float64.

    Each training trial's window starts `split.pre_onset_frames` before its onset, clamped into the
    recording exactly as test windows are (`neurovox.preprocess.WindowDataset`). A window that would
    reach a test or validation frame (the last training trial before a held-out one) is left out.
    """
    n_target, n = split.n_target_frames, prepared.n_frames
    on = prepared.trials["onset_frame"].to_numpy(np.int64)
    rows = np.asarray(split.train_trials, dtype=np.int64)
    starts = np.clip(on[rows] - split.pre_onset_frames, split.n_lead_frames, n - n_target)
    idx = starts[:, None] + np.arange(n_target)[None]
    idx = idx[split.train_frame_mask[idx].all(axis=1)]
    if len(idx) == 0:
        raise DataError(f"no training trial of the split {split!r} has a whole window of training frames to "
                        "average for the onset-aligned baseline; use a split with more training trials.")
    return np.asarray(prepared.mel_db, dtype=np.float64)[idx].mean(axis=0)


def baseline_windows(prepared, split, start_frames: np.ndarray) -> dict[str, np.ndarray]:
    """Both baselines' mel dB for the test windows.

    Parameters
    ----------
    prepared : Prepared
    split : Split
        The split the decoder was trained with: only its training trials/frames are used.
    start_frames : ndarray of int, shape (n_windows,)
        First TARGET frame of each test window.

    Returns
    -------
    dict
        ``{name: mel_db (n_windows, n_target_frames, n_mels) float32}`` for `BASELINES`.
    """
    n_target, n = split.n_target_frames, prepared.n_frames
    mel = np.asarray(prepared.mel_db, dtype=np.float64)
    speech_mean = train_speech_mean_db(prepared, split)
    # The timing-given series: the silence spectrum, with the template pasted at every trial's onset
    # (in onset order, so where two templates overlap the later trial's wins).
    silence = split.train_frame_mask & ~_any_speech(prepared)
    silence_mean = mel[silence].mean(axis=0) if silence.sum() >= 2 else speech_mean
    template = onset_template(prepared, split)
    series = np.tile(silence_mean, (n, 1))
    on = np.sort(prepared.trials["onset_frame"].to_numpy(np.int64))
    for o in on:
        a = o - split.pre_onset_frames
        lo, hi = max(a, 0), min(a + n_target, n)
        if hi > lo:
            series[lo:hi] = template[lo - a: hi - a]
    starts = np.asarray(start_frames, dtype=np.int64)
    idx = starts[:, None] + np.arange(n_target)[None]
    return {"constant_spectrum": np.broadcast_to(speech_mean, (len(starts), n_target, len(speech_mean))).astype(np.float32),
            "onset_mean": series[idx].astype(np.float32)}


def seen_words(prepared, split, test_trials: np.ndarray) -> np.ndarray:
    """Whether each test window's word occurs among the split's training or validation trials.

    Returns
    -------
    ndarray of object, shape (n_windows,)
        True / False per trial-based window; None for windows that belong to no trial (SWPD tiles).
    """
    labels = prepared.trials["label"].astype(str).to_numpy()
    train_words = set(labels[np.concatenate([split.train_trials, split.val_trials]).astype(np.int64)])
    return np.array([None if t < 0 else bool(labels[t] in train_words) for t in np.asarray(test_trials)], dtype=object)


def _any_speech(prepared) -> np.ndarray:
    on = prepared.trials["onset_frame"].to_numpy(np.int64)
    off = prepared.trials["offset_frame"].to_numpy(np.int64)
    mask = np.zeros(prepared.n_frames, dtype=bool)
    for a, b in zip(on, off):
        mask[a:b] = True
    return mask
