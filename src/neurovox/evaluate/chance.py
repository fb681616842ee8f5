"""Scoring decoded test trials, chance levels and the speech-autoencoder ceiling.

A metric is never reported alone: `chance_levels` scores the same trained decoder on neural input
that cannot carry the right information, computed exactly like the real score:

- ``"shuffled"``: the test windows are permuted by a derangement (no trial keeps its own neural
  window), so each decoded trial is compared with another trial's reference.
- ``"circular_shift"``: the SWPD control. The whole normalised neural series is circularly shifted
  by a random offset of at least 10 % of its length (at most 90 %), and the test windows are cut
  from the shifted series at the original positions. This keeps the neural signal's own
  statistics and temporal structure but breaks its alignment with the speech.

`no_neural_baselines` scores the predictions of `neurovox.evaluate.baselines` (built from the
training trials, no neural data) exactly like a decoder, and `gains` compares the decoder with each
of them trial by trial (paired bootstrap CI, Wilcoxon signed-rank test). `by_word` repeats the
summaries for test trials whose word was / was not among the training words.

`ceiling` scores the speech autoencoder's resynthesis of the reference audio: the best any
decoder that goes through that synthesizer can do (so it is only reported for such decoders).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from neurovox import dsp
from neurovox.errors import DataError
from neurovox.evaluate import metrics as M

TRIAL_METRICS = ("pcc", "pcc_tilt", "stoi", "estoi", "stoi_plus", "mcd_db")
SUMMARY_METRICS = TRIAL_METRICS + ("pcc_per_bin",)
METRIC_INFO = {
    "pcc": ("PCC (per trial)", "Pearson r of dB mel spectrograms over each trial's speech segment (Chen et al.); "
                               "dominated by the spectral tilt of speech: a constant speech spectrum scores ~0.65", True),
    "pcc_tilt": ("PCC, tilt removed", "per-trial PCC after subtracting each mel bin's mean over the training speech "
                                      "frames: only trial-specific spectral structure counts (constant spectrum = 0)", True),
    "pcc_per_bin": ("PCC (per mel bin)", "Pearson r per mel bin over concatenated test frames, mean over bins (SWPD)", True),
    "stoi": ("STOI", "pystoi, per trial window", True),
    "estoi": ("ESTOI", "pystoi extended, per trial window", True),
    "stoi_plus": ("STOI+", "STOI without clipping (Graetzer & Hopkins 2021)", True),
    "mcd_db": ("MCD (dB)", "mel cepstral distortion over the speech segment, c1-c24", False),
    "asr_word": ("ASR word accuracy", "fraction of trials whose word a closed-vocabulary speech recogniser "
                                      "(PocketSphinx en-US, one word of the recording's word list) recognises "
                                      "first; chance 1 / vocabulary size", True),
    "asr_top3": ("ASR top-3 accuracy", "fraction of trials whose word is among the recogniser's 3 best words", True),
}  # name -> (label, description, higher is better)


class TrialDecoder(Protocol):
    """What evaluation needs from any trained decoding run (docs/architecture.md)."""

    n_lead_frames: int
    n_target_frames: int
    synthesis: str  # "formant": rendered by the formant speech model (its resynthesis bounds it); else e.g. "griffin_lim"

    def decode(self, neural_windows: np.ndarray, generator: Any = None) -> dict[str, np.ndarray]: ...


@dataclass
class TestSet:
    """Test windows with their references, all aligned on the 125 Hz frame clock.

    Attributes
    ----------
    neural_windows : ndarray, shape (n_trials, n_lead_frames + n_target_frames, n_channels)
        Normalised neural input, as the decoder sees it.
    mel_db : ndarray, shape (n_trials, n_target_frames, n_mels)
    audio : ndarray, shape (n_trials, n_target_frames * 128)
    speech_mask : ndarray of bool, shape (n_trials, n_target_frames)
    start_frames : ndarray of int, shape (n_trials,)
        Frame index (in `neural_series`) of each window's first neural frame.
    neural_series : ndarray, shape (n_frames, n_channels), optional
        The whole normalised neural recording (for the circular-shift control).
    trials, labels : trial row and word of each window.
    f0_hz, formants_hz : reference Praat tracks, shapes (n_trials, n_target_frames) and (.., 6), optional.
    train_mel_mean_db : ndarray, shape (n_mels,), optional
        Mean of each mel bin over the training speech frames (for the tilt-removed PCC).
    baselines : dict, optional
        No-neural baseline predictions ``{name: mel_db (n_trials, n_target_frames, n_mels)}``
        (`neurovox.evaluate.baselines.baseline_windows`).
    seen : ndarray of object, shape (n_trials,), optional
        True / False: the trial's word occurs / does not occur among the training words; None: no word.
    vocabulary : tuple of str
        The recording's word list when the word recogniser applies to it (ASR metrics are then scored);
        empty otherwise, and `asr_note` says why (`neurovox.evaluate.asr.asr_applicability`).
    """

    neural_windows: np.ndarray
    mel_db: np.ndarray
    audio: np.ndarray
    speech_mask: np.ndarray
    n_lead_frames: int
    start_frames: np.ndarray | None = None
    neural_series: np.ndarray | None = None
    trials: np.ndarray | None = None
    labels: list[str] = field(default_factory=list)
    f0_hz: np.ndarray | None = None
    formants_hz: np.ndarray | None = None
    train_mel_mean_db: np.ndarray | None = None
    baselines: dict[str, np.ndarray] = field(default_factory=dict)
    seen: np.ndarray | None = None
    vocabulary: tuple[str, ...] = ()
    asr_note: str = "not applicable: no word list given"

    def __post_init__(self) -> None:
        n = len(self.neural_windows)
        for name in ("mel_db", "audio", "speech_mask"):
            if len(getattr(self, name)) != n:
                raise DataError(f"TestSet.{name} has {len(getattr(self, name))} trials, neural_windows {n}.")
        if n < 2:
            raise DataError(f"Evaluation needs at least 2 test trials (for chance levels), got {n}.")
        if self.trials is None:
            self.trials = np.arange(n)
        if not self.labels:
            self.labels = [str(t) for t in self.trials]
        if len(self.labels) != n or len(self.trials) != n:
            raise DataError(f"TestSet has {n} windows but {len(self.trials)} trial ids and {len(self.labels)} labels.")
        for name, mel in self.baselines.items():
            if np.shape(mel) != np.shape(self.mel_db):
                raise DataError(f"TestSet baseline {name!r} has shape {np.shape(mel)}; the references have "
                                f"{np.shape(self.mel_db)}.")
        if self.seen is not None and len(self.seen) != n:
            raise DataError(f"TestSet.seen has {len(self.seen)} entries for {n} windows.")

    @property
    def n_trials(self) -> int:
        return len(self.neural_windows)


# Scoring ------------------------------------------------------------------------------------------

def score_trials(test: TestSet, decoded: dict[str, np.ndarray], sfreq_hz: int = dsp.SAMPLE_RATE_HZ) -> dict[str, Any]:
    """Every metric of decoded output against the test references.

    Parameters
    ----------
    test : TestSet
    decoded : dict
        ``mel_db`` (n_trials, n_target_frames, n_mels) and ``audio`` (n_trials, n_samples).

    Returns
    -------
    dict
        ``per_trial``: {metric: ndarray (n_trials,)} for `TRIAL_METRICS` (and the ASR accuracies when
        `test.vocabulary` is set); ``pcc_per_bin``: ndarray (n_mels,); ``bin_stats``: per-trial
        sufficient statistics for bootstrapping the per-bin PCC; ``recognized``: the recogniser's
        best words per trial (None without a vocabulary).
    """
    mel = np.asarray(decoded["mel_db"], dtype=np.float64)
    audio = np.asarray(decoded["audio"], dtype=np.float64)
    if mel.shape != test.mel_db.shape:
        raise DataError(f"Decoded mel_db has shape {mel.shape}; the references have {test.mel_db.shape}. "
                        "The decoder's n_target_frames or n_mels disagree with the test windows.")
    if audio.shape != test.audio.shape:
        raise DataError(f"Decoded audio has shape {audio.shape}; the references have {test.audio.shape}.")
    ref_mel = np.asarray(test.mel_db, dtype=np.float64)
    per_trial = {"pcc": M.pcc_per_trial(ref_mel, mel, test.speech_mask)}
    if test.train_mel_mean_db is not None:
        per_trial["pcc_tilt"] = M.pcc_tilt_removed(ref_mel, mel, test.train_mel_mean_db, test.speech_mask)
    per_trial |= {
        "stoi": M.stoi(test.audio, audio, sfreq_hz),
        "estoi": M.estoi(test.audio, audio, sfreq_hz),
        "stoi_plus": M.stoi_plus(test.audio, audio, sfreq_hz),
        "mcd_db": M.mcd_per_trial(ref_mel, mel, test.speech_mask),
    }
    recognized = None
    if test.vocabulary:  # closed-vocabulary word recognition of the decoded audio
        from neurovox.evaluate import asr

        recognized = asr.recognizer_for(tuple(test.vocabulary)).recognize(audio, sfreq_hz)
        per_trial["asr_word"] = asr.word_accuracy(recognized, test.labels, 1)
        per_trial["asr_top3"] = asr.word_accuracy(recognized, test.labels, asr.TOP_K)
    n_mels = ref_mel.shape[-1]
    bins = M.pcc_per_bin(ref_mel.reshape(-1, n_mels), mel.reshape(-1, n_mels))
    stats = np.stack([ref_mel.sum(1), mel.sum(1), (ref_mel ** 2).sum(1), (mel ** 2).sum(1),
                      (ref_mel * mel).sum(1)], axis=1)  # (n_trials, 5, n_mels)
    return {"per_trial": per_trial, "pcc_per_bin": bins, "bin_stats": stats, "n_frames_per_trial": ref_mel.shape[1],
            "recognized": recognized}


def _pcc_bins_from_stats(stats: np.ndarray, n_frames: int) -> np.ndarray:
    """Mean-over-bins PCC from summed statistics, stats shape (..., 5, n_mels) summed over trials."""
    sx, sy, sxx, syy, sxy = (stats[..., i, :] for i in range(5))
    cov = sxy - sx * sy / n_frames
    vx = sxx - sx ** 2 / n_frames
    vy = syy - sy ** 2 / n_frames
    with np.errstate(invalid="ignore", divide="ignore"):
        r = cov / np.sqrt(vx * vy)
    r = np.where(np.isfinite(r), r, np.nan)
    with warnings.catch_warnings():  # a constant prediction (the constant-spectrum baseline) has no finite bin
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(r, axis=-1)


def summarize_trials(per_trial: dict[str, np.ndarray], generator: np.random.Generator, n_boot: int = 2000,
                     ci: float = 0.95) -> dict[str, dict[str, float]]:
    """Mean, SEM, bootstrap CI over trials and n of every per-trial metric."""
    out: dict[str, dict[str, float]] = {}
    for name, values in per_trial.items():
        v = np.asarray(values, dtype=np.float64)
        finite = v[np.isfinite(v)]
        low, high = M.bootstrap_ci(v, n_boot=n_boot, ci=ci, generator=generator)
        out[name] = {"mean": float(finite.mean()) if len(finite) else float("nan"), "sem": M.sem(v),
                     "ci_low": low, "ci_high": high, "n": int(len(finite))}
    return out


def summarize(scores: dict[str, Any], generator: np.random.Generator, n_boot: int = 2000,
              ci: float = 0.95) -> dict[str, dict[str, float]]:
    """`summarize_trials` of every per-trial metric, plus the per-bin PCC with its bootstrap CI."""
    out = summarize_trials(scores["per_trial"], generator, n_boot, ci)
    stats = scores["bin_stats"]
    n_trials = len(stats)
    idx = generator.integers(0, n_trials, size=(min(n_boot, 500), n_trials))
    boot = _pcc_bins_from_stats(stats[idx].sum(1), n_trials * scores["n_frames_per_trial"])
    alpha = (1 - ci) / 2
    bins = scores["pcc_per_bin"]
    finite_boot = boot[np.isfinite(boot)]
    out["pcc_per_bin"] = {"mean": float(np.nanmean(bins)) if np.isfinite(bins).any() else float("nan"), "sem": float("nan"),
                          "ci_low": float(np.quantile(finite_boot, alpha)) if len(finite_boot) else float("nan"),
                          "ci_high": float(np.quantile(finite_boot, 1 - alpha)) if len(finite_boot) else float("nan"),
                          "n": int(np.isfinite(bins).sum())}
    return out


# Chance levels ------------------------------------------------------------------------------------

def derangement(n: int, generator: np.random.Generator) -> np.ndarray:
    """A random permutation of range(n) with no fixed point (n >= 2)."""
    if n < 2:
        raise DataError(f"A derangement needs at least 2 items, got {n}.")
    while True:
        perm = generator.permutation(n)
        if not np.any(perm == np.arange(n)):
            return perm


def shuffled_windows(neural_windows: np.ndarray, generator: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Trial-shuffled test windows: (windows[perm], perm) with perm a derangement."""
    perm = derangement(len(neural_windows), generator)
    return neural_windows[perm], perm


def circular_shift_windows(neural_series: np.ndarray, start_frames: np.ndarray, n_window_frames: int,
                           generator: np.random.Generator, min_fraction: float = 0.1) -> tuple[np.ndarray, int]:
    """SWPD circular-shift control: windows cut from the circularly shifted neural series.

    Parameters
    ----------
    neural_series : ndarray, shape (n_frames, n_channels)
        The whole normalised neural recording.
    start_frames : ndarray of int, shape (n_trials,)
        First neural frame of each test window.
    n_window_frames : int
        Neural frames per window (n_lead_frames + n_target_frames).
    min_fraction : float
        The shift is drawn uniformly from [min_fraction, 1 - min_fraction] of the series length.

    Returns
    -------
    windows : ndarray, shape (n_trials, n_window_frames, n_channels)
    shift_frames : int
    """
    n_frames = len(neural_series)
    low = int(np.ceil(min_fraction * n_frames))
    high = n_frames - low
    if high <= low:
        raise DataError(f"The neural series ({n_frames} frames) is too short for a circular shift of at least "
                        f"{min_fraction:.0%} of its length.")
    shift = int(generator.integers(low, high + 1))
    shifted = np.roll(neural_series, shift, axis=0)
    windows = windows_from_series(shifted, start_frames, n_window_frames)
    return windows, shift


def windows_from_series(series: np.ndarray, start_frames: np.ndarray, n_window_frames: int) -> np.ndarray:
    """Cut windows [s, s + n_window_frames) from `series` (n_frames, n_channels); wraps at the end."""
    idx = (np.asarray(start_frames)[:, None] + np.arange(n_window_frames)[None]) % len(series)
    return series[idx]


def chance_levels(decoder: TrialDecoder, test: TestSet, generator: np.random.Generator,
                  decode_generator: Any = None, n_repeats: int = 1, n_boot: int = 2000,
                  sfreq_hz: int = dsp.SAMPLE_RATE_HZ) -> dict[str, dict[str, Any]]:
    """Score `decoder` on trial-shuffled and circularly shifted neural input.

    Returns
    -------
    dict
        ``{"shuffled": {...}, "circular_shift": {...}}``, each with ``summary`` (as `summarize`,
        per-trial values pooled over `n_repeats` draws), ``per_trial`` (first draw) and the draws
        used (permutations or shifts). ``circular_shift`` is absent when `test.neural_series` is None.
    """
    out: dict[str, dict[str, Any]] = {}
    controls: list[tuple[str, Callable[[], tuple[np.ndarray, Any]]]] = [
        ("shuffled", lambda: shuffled_windows(test.neural_windows, generator))]
    if test.neural_series is not None and test.start_frames is not None:
        n_window = test.neural_windows.shape[1]
        controls.append(("circular_shift", lambda: circular_shift_windows(
            test.neural_series, test.start_frames, n_window, generator)))
    for name, make in controls:
        pooled: list[dict[str, Any]] = []
        draws = []
        for _ in range(n_repeats):
            windows, draw = make()
            decoded = decoder.decode(np.ascontiguousarray(windows, dtype=np.float32), generator=decode_generator)
            pooled.append(score_trials(test, decoded, sfreq_hz))
            draws.append(draw.tolist() if isinstance(draw, np.ndarray) else draw)
        merged = _pool(pooled)
        out[name] = {"summary": summarize(merged, generator, n_boot), "per_trial": pooled[0]["per_trial"],
                     "draws": draws}
    return out


def _pool(scores: list[dict[str, Any]]) -> dict[str, Any]:
    if len(scores) == 1:
        return scores[0]
    return {
        "per_trial": {k: np.concatenate([s["per_trial"][k] for s in scores]) for k in scores[0]["per_trial"]},
        "pcc_per_bin": np.nanmean(np.stack([s["pcc_per_bin"] for s in scores]), axis=0),
        "bin_stats": np.concatenate([s["bin_stats"] for s in scores]),
        "n_frames_per_trial": scores[0]["n_frames_per_trial"],
    }


# No-neural baselines and gains -------------------------------------------------------------------

def no_neural_baselines(test: TestSet, generator: np.random.Generator, n_boot: int = 2000,
                        sfreq_hz: int = dsp.SAMPLE_RATE_HZ) -> dict[str, dict[str, Any]]:
    """Score each of `test.baselines` exactly like a decoder (audio by Griffin-Lim from its mel).

    Returns
    -------
    dict
        ``{name: {"summary", "per_trial", "decoded"}}`` as `ceiling`; empty when the test set has
        no baselines.
    """
    from neurovox.decoders.linear import mel_db_to_audio

    out = {}
    for name, mel in test.baselines.items():
        mel = np.asarray(mel, dtype=np.float32)
        audio = mel_db_to_audio(mel, generator=np.random.default_rng(generator.integers(2**31)))
        decoded = {"mel_db": mel, "audio": audio}
        scores = score_trials(test, decoded, sfreq_hz)
        out[name] = {"summary": summarize(scores, generator, n_boot), "per_trial": scores["per_trial"],
                     "decoded": decoded}
    return out


def gains(per_trial: dict[str, np.ndarray], references: dict[str, dict[str, np.ndarray]],
          generator: np.random.Generator, n_boot: int = 2000) -> dict[str, dict[str, dict[str, float]]]:
    """Paired gain of the decoder over each reference (baseline or chance), per metric.

    Parameters
    ----------
    per_trial : {metric: ndarray (n_trials,)}
        The decoder's per-trial scores.
    references : {name: {metric: ndarray (n_trials,)}}
        The same trials scored for each reference prediction.

    Returns
    -------
    ``{name: {metric: neurovox.evaluate.metrics.paired_gain(...)}}`` (positive = decoder better).
    """
    return {name: {m: M.paired_gain(per_trial[m], ref[m], METRIC_INFO[m][2], n_boot=n_boot, generator=generator)
                   for m in per_trial if m in ref}
            for name, ref in references.items()}


def by_word(test: TestSet, per_trial: dict[str, np.ndarray], baselines: dict[str, dict[str, np.ndarray]],
            chance: dict[str, np.ndarray] | None, generator: np.random.Generator,
            n_boot: int = 2000) -> dict[str, dict[str, Any]]:
    """Summaries and gains for the test trials whose word was seen / unseen in training.

    Returns
    -------
    dict
        ``{"seen"|"unseen": {"n_trials", "words", "metrics", "baselines", "chance_shuffled", "gain"}}``;
        a group without trials has only ``n_trials`` = 0. Empty when `test.seen` is None.
    """
    if test.seen is None:
        return {}
    out: dict[str, dict[str, Any]] = {}
    for group, flag in (("seen", True), ("unseen", False)):
        idx = np.flatnonzero(np.array([s is flag for s in test.seen]))
        entry: dict[str, Any] = {"n_trials": int(len(idx)), "words": sorted({test.labels[i] for i in idx})}
        if len(idx) >= 2:
            pick = lambda d: {m: np.asarray(v)[idx] for m, v in d.items()}  # noqa: E731
            entry["metrics"] = summarize_trials(pick(per_trial), generator, n_boot)
            entry["baselines"] = {b: summarize_trials(pick(v), generator, n_boot) for b, v in baselines.items()}
            if chance is not None:
                entry["chance_shuffled"] = summarize_trials(pick(chance), generator, n_boot)
            entry["gain"] = gains(pick(per_trial), {b: pick(v) for b, v in baselines.items()}, generator, n_boot)
        out[group] = entry
    return out


# Ceiling -----------------------------------------------------------------------------------------

def audio_to_mel_db(audio: np.ndarray) -> np.ndarray:
    """Mel dB on the shared convention (dsp): (n_trials, n_samples) -> (n_trials, n_samples // 128, 80)."""
    power = dsp.stft_power_np(np.asarray(audio, dtype=np.float32))
    return np.asarray(dsp.power_to_db(dsp.power_to_mel(power)), dtype=np.float32)


def ceiling(resynthesize: Callable[[np.ndarray], Any], test: TestSet, generator: np.random.Generator,
            n_boot: int = 2000, sfreq_hz: int = dsp.SAMPLE_RATE_HZ) -> dict[str, Any]:
    """Score the speech autoencoder's resynthesis of the reference audio.

    Parameters
    ----------
    resynthesize : callable
        reference audio (n_trials, n_samples) -> resynthesised audio of the same shape, or a dict
        with ``audio`` (and optionally ``mel_db``; otherwise it is computed from the audio).

    Returns
    -------
    dict with ``summary`` and ``per_trial`` as in `chance_levels`, and ``decoded`` (the resynthesis).
    """
    out = resynthesize(np.asarray(test.audio, dtype=np.float32))
    if not isinstance(out, dict):
        out = {"audio": np.asarray(out)}
    audio = np.asarray(out["audio"], dtype=np.float32)
    mel = np.asarray(out["mel_db"]) if "mel_db" in out else audio_to_mel_db(audio)
    decoded = {"audio": audio, "mel_db": mel}
    scores = score_trials(test, decoded, sfreq_hz)
    return {"summary": summarize(scores, generator, n_boot), "per_trial": scores["per_trial"], "decoded": decoded}
