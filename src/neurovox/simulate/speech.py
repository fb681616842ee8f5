"""The speech side of a simulated participant: a timeline of spoken words (audio + trial table)
and the audio-derived feature the encoding model listens to."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from neurovox import dsp
from neurovox.io.recording import make_trial_table
from neurovox.simulate.config import TASKS, SimulateConfig
from neurovox.simulate.corpus import Corpus

FEATURE_RANGE_DB = 60.0   # dynamic range of the normalised log-mel feature
CORPUS_PEAK = 0.9          # peak amplitude of every corpus utterance (scripts/render_corpus.py)
ONSET_THRESHOLD_DB = 35.0  # speech onset/offset: first/last 10 ms frame within this of the word's peak


@dataclass
class SpeechTimeline:
    """Audio of a whole session and its trials, on the 125 Hz frame clock."""

    audio: np.ndarray          # (n_frames * 128,) float32, speech + background noise, 16 kHz
    clean: np.ndarray          # (n_frames * 128,) float32, speech only
    trials: pd.DataFrame       # onset_s, offset_s (speech onset/offset), label, task
    segments_s: np.ndarray     # (n_trials, 2) span of each trial: midpoints of the surrounding pauses
    n_frames: int


def _stretch(wave: np.ndarray, rate: float) -> np.ndarray:
    """Speak `rate` times faster by linear resampling (pitch moves with rate, as in natural variation)."""
    n_out = max(2, int(round(len(wave) / rate)))
    return np.interp(np.arange(n_out) * rate, np.arange(len(wave)), wave).astype(np.float32)


def _speech_span(wave: np.ndarray, sfreq_hz: int) -> tuple[int, int]:
    """First and last sample of the frames within ONSET_THRESHOLD_DB of the loudest 10 ms frame."""
    frame = sfreq_hz // 100
    n = len(wave) // frame
    e_db = 10 * np.log10(np.mean(wave[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-12)
    loud = np.flatnonzero(e_db > e_db.max() - ONSET_THRESHOLD_DB)
    return int(loud[0] * frame), int((loud[-1] + 1) * frame)


def trial_plan(n_trials: int, words: tuple[str, ...], rng: np.random.Generator) -> list[tuple[str, str]]:
    """(task, word) per trial: one block per task in random order, words cycling through shuffled vocabularies."""
    per_task = np.full(len(TASKS), n_trials // len(TASKS))
    per_task[: n_trials % len(TASKS)] += 1
    plan = []
    for t in rng.permutation(len(TASKS)):
        n = int(per_task[t])
        order = np.concatenate([rng.permutation(len(words)) for _ in range(n // len(words) + 1)])[:n]
        plan += [(TASKS[t], words[i]) for i in order]
    return plan


def build_timeline(cfg: SimulateConfig, corpus: Corpus, voice: str, rng: np.random.Generator) -> SpeechTimeline:
    """Place one utterance per trial with natural pauses, rate/loudness variation and background noise."""
    sfreq_hz = corpus.sample_rate_hz
    utts = corpus.for_voice(voice)
    plan = trial_plan(cfg.n_trials, corpus.words, rng)
    placed, onsets, offsets, spans = [], [], [], []
    cursor_s = cfg.lead_in_s
    for task, word in plan:
        rate = 1.0 + rng.uniform(-cfg.rate_jitter, cfg.rate_jitter)
        gain = 10 ** ((cfg.speech_peak_dbfs + rng.uniform(-cfg.gain_jitter_db, cfg.gain_jitter_db)) / 20) / CORPUS_PEAK
        wave = _stretch(utts[word].audio, rate) * np.float32(gain)
        start = int(round(cursor_s * sfreq_hz))
        s0, s1 = _speech_span(wave, sfreq_hz)
        placed.append((start, wave))
        onsets.append((start + s0) / sfreq_hz)
        offsets.append((start + s1) / sfreq_hz)
        spans.append((start / sfreq_hz, (start + len(wave)) / sfreq_hz))
        pause_s = rng.uniform(cfg.pause_min_s, cfg.pause_max_s) + rng.normal(0.0, cfg.onset_jitter_s)
        cursor_s = spans[-1][1] + max(0.4, pause_s)
    # whole seconds, so every sampling rate (16 kHz, 125 Hz, 1024 Hz) divides the duration exactly
    duration_s = float(np.ceil(spans[-1][1] + cfg.lead_in_s))
    n_frames = int(round(duration_s * dsp.FRAME_RATE_HZ))
    clean = np.zeros(n_frames * dsp.HOP_SAMPLES, np.float32)
    for start, wave in placed:
        clean[start:start + len(wave)] += wave
    white = rng.standard_normal(len(clean))
    noise = 0.5 * white + lfilter([1.0], [1.0, -0.97], rng.standard_normal(len(clean))) * 0.5 * np.sqrt(1 - 0.97**2)
    noise *= 10 ** (cfg.audio_noise_dbfs / 20) / noise.std()
    audio = np.clip(clean + noise.astype(np.float32), -1.0, 1.0)
    spans = np.asarray(spans)
    mids = np.r_[0.0, (spans[:-1, 1] + spans[1:, 0]) / 2, duration_s]
    trials = make_trial_table(onsets, offsets, [w for _, w in plan], [t for t, _ in plan])
    return SpeechTimeline(audio=audio, clean=clean, trials=trials, segments_s=np.stack([mids[:-1], mids[1:]], 1),
                          n_frames=n_frames)


def speech_feature(audio: np.ndarray, ref_db: float | None = None) -> np.ndarray:
    """The audio feature the encoding model hears: 80-bin log-mel (dsp conventions) mapped to [0, 1].

    Parameters
    ----------
    audio : ndarray, shape (n_frames * 128,)
        16 kHz audio.
    ref_db : float, optional
        Level mapped to 1 (default: the loudest mel bin of this audio); levels `FEATURE_RANGE_DB`
        below it and lower map to 0.

    Returns
    -------
    feature : ndarray, shape (n_frames, 80), float32
    """
    mel_db = dsp.power_to_db(dsp.power_to_mel(dsp.stft_power_np(audio)))
    ref_db = float(mel_db.max()) if ref_db is None else ref_db
    return np.clip((mel_db - (ref_db - FEATURE_RANGE_DB)) / FEATURE_RANGE_DB, 0.0, 1.0).astype(np.float32)
