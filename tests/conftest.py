"""Shared test fixtures and helpers. Keep fixtures session-scoped and small: the whole suite must run in
well under 15 minutes on 2 CPU cores.

Test modules import only from the package (`neurovox...`) and from this file (`from tests.conftest import
...`), never from each other: every helper that more than one test module uses lives here, in a section
of its own.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import random
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pytest
import scipy.signal as ss
import torch
from scipy.signal import resample_poly

from neurovox.errors import DataError
from neurovox.evaluate import chance as C
from neurovox.io import Recording, RecordingMeta, flinker_channel_table, make_channel_table, make_trial_table

# Tests must not depend on how many threads a machine has; 2 matches CI.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(0)


# --------------------------------------------------------------------------- simulated participants
# Session-scoped, small (seconds to generate); every test may read them but must not modify them
# (copy first: `rec.replace(...)`, `arr.copy()`). They use the LINEAR encoding model on purpose: the tests
# that share them check mechanics (preprocessing against a known envelope on every contact, decoders that
# learn, resume, leaks) with figures measured on it. The realistic default encoding is tested in
# tests/test_simulate_realistic.py and runs in the demo (tests/test_demo.py).
SIM_SEED = 0


@pytest.fixture(scope="session")
def sim_hg_8x8():
    """(Recording, GroundTruth): linear encoding, high gamma at 125 Hz, 8x8 grid (64 ch, 3 bad), 60 trials over
    5 tasks (~2 min of speech, 16 kHz audio), snr_db 0, seed 0."""
    from neurovox.simulate import SimulateConfig, simulate_participant

    return simulate_participant(SimulateConfig(n_trials=60, layout="grid8x8", encoding="linear"), SIM_SEED,
                                kind="high_gamma")


@pytest.fixture(scope="session")
def sim_hg_path(sim_hg_8x8, tmp_path_factory):
    """Path of `sim_hg_8x8`'s Recording written as Flinker HDF5 (ground truth: `sim_hg_8x8[1]`)."""
    from neurovox.io import write_flinker_hdf5

    return write_flinker_hdf5(sim_hg_8x8[0], tmp_path_factory.mktemp("sim_hg") / "sim01_high_gamma.h5")


@pytest.fixture(scope="session")
def sim_raw():
    """(Recording, GroundTruth): linear encoding, raw voltage (V) at 1024 Hz, 2 sEEG shafts (16-32 contacts, >= 1 bad),
    20 trials (~45 s), 60 Hz line noise, snr_db 0, seed 0. `GroundTruth.envelope` is the
    noiseless high-gamma envelope (125 Hz frames) that modulates the 70-170 Hz carrier;
    `GroundTruth.raw_hg_envelope` (V) the high-gamma amplitude actually in the voltage (the target
    for scoring preprocessing, see tests/test_preprocess_simulated.py)."""
    from neurovox.simulate import SimulateConfig, simulate_participant

    cfg = SimulateConfig(n_trials=20, layout="seeg", n_seeg_shafts=2, line_freq_hz=60.0, encoding="linear")
    return simulate_participant(cfg, SIM_SEED, kind="raw")


# --------------------------------------------------------------------------- trained speech model
@pytest.fixture(scope="session")
def speech_run_small_trained(sim_hg_8x8, tmp_path_factory):
    """(path, SpeechModel) of `speech_run_small`: the run directory, and deep copies of the encoder and the
    synthesizer as training left them in memory (taken when `train_speech_model` hands them to
    `save_speech_model` to write model.pt), to check that model.pt reloads to what was trained."""
    import copy

    import lightning

    import neurovox.encoder.train as train_mod
    from neurovox.config import load_config
    from neurovox.encoder import SpeechModel, SpeechRunConfig, train_speech_model
    from neurovox.preprocess import prepare
    from neurovox.runs import start_run

    cfg = load_config(SpeechRunConfig, overrides=[
        "speech.max_steps=60", "speech.batch_size=4", "speech.lr=0.003", "speech.warmup_steps=10",
        "speech.checkpoint_every=40", "speech.n_examples=1", "encoder.hidden=128", "encoder.n_blocks=4"])
    run = start_run(tmp_path_factory.mktemp("speech_small") / "run", kind="speech", config=cfg, seed=cfg.seed)
    trained = []
    save = train_mod.save_speech_model

    def save_and_keep(path, encoder, synth, extra=None):
        trained.append(SpeechModel(copy.deepcopy(encoder), copy.deepcopy(synth)))
        return save(path, encoder, synth, extra)

    lightning.seed_everything(0, verbose=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(train_mod, "save_speech_model", save_and_keep)
        train_speech_model(prepare(sim_hg_8x8[0], cfg.prepare, use_cache=False), cfg, run, progress=False)
    run.mark_done()
    assert len(trained) == 1, "train_speech_model no longer saves model.pt through save_speech_model"
    return run.path, trained[0]


@pytest.fixture(scope="session")
def speech_run_small(speech_run_small_trained):
    """Path of a speech autoencoder run (kind "speech") trained briefly on `sim_hg_8x8`'s audio: 60 steps
    of a 0.4 M-parameter encoder, the settings of tests/test_encoder.py (held-out resynthesis PCC ~0.79).
    Every simulated participant with seed 0 speaks with the same voice, so the decoder tests of all
    layouts and SNRs train against this one frozen speech model (its reference parameters, its synth)."""
    return speech_run_small_trained[0]


@pytest.fixture(scope="session")
def speech_run_tiny10(tmp_path_factory):
    """Speech run (settings of `speech_run_small`) for the 10-word seed-0 participants (every layout of
    `SimulateConfig(n_trials=10)` with seed 0 has the same audio and trial table, so one speech model
    serves them all), trained on the training trials of fold 0 of a 5-fold kfold split only: decoders
    tested on that fold may use it (issue #14: a speech run that heard the test trials is refused)."""
    import lightning

    from neurovox.config import load_config
    from neurovox.encoder import SpeechRunConfig, train_speech_model
    from neurovox.preprocess import prepare
    from neurovox.runs import start_run
    from neurovox.simulate import SimulateConfig, simulate_participant

    rec, _ = simulate_participant(SimulateConfig(n_trials=10), SIM_SEED, kind="high_gamma")
    cfg = load_config(SpeechRunConfig, overrides=[
        "split.scheme=kfold", "split.n_folds=5", "split.fold=0", "prepare.praat=false",
        "speech.max_steps=60", "speech.batch_size=4", "speech.lr=0.003", "speech.warmup_steps=10",
        "speech.checkpoint_every=40", "speech.n_examples=1", "encoder.hidden=128", "encoder.n_blocks=4"])
    run = start_run(tmp_path_factory.mktemp("speech_tiny10") / "run", kind="speech", config=cfg, seed=cfg.seed)
    lightning.seed_everything(0, verbose=False)
    train_speech_model(prepare(rec, cfg.prepare, use_cache=False), cfg, run, progress=False)
    run.mark_done()
    return run.path



# --------------------------------------------------------------------------- io builders
# make_recording, assert_same_recording: used by the io tests (test_io_*.py) and tests/test_chunked.py.
def make_recording(n_channels: int = 16, *, duration_s: float = 20.0, neural_sfreq_hz: float = 125.0,
                   audio_sfreq_hz: float = 16000.0, kind: str = "high_gamma", n_trials: int = 10,
                   seed: int = 0, flinker_layout: bool = False, ch_type: str = "ecog") -> Recording:
    """A small random recording with trials every 2 s, 3 words, 5 tasks (2 trials each)."""
    rng = np.random.default_rng(seed)
    n = int(round(duration_s * neural_sfreq_hz))
    n_audio = int(round(duration_s * audio_sfreq_hz))
    scale = 1e-5 if kind == "raw" else 1.0
    neural = (rng.standard_normal((n, n_channels)) * scale).astype(np.float32)
    audio = (0.1 * rng.standard_normal(n_audio)).astype(np.float32)
    if flinker_layout:
        channels = flinker_channel_table(n_channels)[0]
    else:
        names = [f"{'LA' if i < n_channels // 2 else 'RB'}{i + 1}" for i in range(n_channels)]
        channels = make_channel_table(names, ch_type, bad=[i == 2 for i in range(n_channels)],
                                      xyz=rng.standard_normal((n_channels, 3)) * 0.01,
                                      group=[nm[:2] for nm in names])
    spacing_s = min(2.0, duration_s / n_trials)
    onsets = spacing_s * (0.25 + np.arange(n_trials)) + rng.uniform(0, 0.15, n_trials) * spacing_s
    trials = make_trial_table(onsets, onsets + spacing_s * (0.3 + rng.uniform(0, 0.2, n_trials)),
                              [("huis", "kat", "01")[i % 3] for i in range(n_trials)],
                              [f"task{i * 5 // n_trials + 1}" for i in range(n_trials)])
    meta = RecordingMeta(participant_id="P07", sex="F", hemisphere="left",
                         grid_density="low" if n_channels == 64 else "other")
    return Recording(neural=neural, neural_sfreq_hz=neural_sfreq_hz, neural_kind=kind, audio=audio,
                     audio_sfreq_hz=audio_sfreq_hz, channels=channels, trials=trials, meta=meta,
                     neural_unit="V" if kind == "raw" else "a.u.")


def assert_same_recording(a: Recording, b: Recording, *, extras: bool = True) -> None:
    """Exact equality of data, dtypes, tables and the metadata a round trip must keep."""
    assert a.neural.dtype == b.neural.dtype and a.audio.dtype == b.audio.dtype
    np.testing.assert_array_equal(a.neural, b.neural)
    np.testing.assert_array_equal(a.audio, b.audio)
    assert (a.neural_sfreq_hz, a.audio_sfreq_hz, a.neural_kind, a.neural_unit) == \
        (b.neural_sfreq_hz, b.audio_sfreq_hz, b.neural_kind, b.neural_unit)
    pd.testing.assert_frame_equal(a.channels, b.channels)
    pd.testing.assert_frame_equal(a.trials, b.trials)
    for field in ("participant_id", "sex", "hemisphere", "grid_density"):
        assert getattr(a.meta, field) == getattr(b.meta, field), field
    if extras:
        assert sorted(a.extras) == sorted(b.extras)
        for k in a.extras:
            np.testing.assert_array_equal(a.extras[k], b.extras[k])


# --------------------------------------------------------------------------- synthetic raw participant
# make_raw_recording (with RAW_HZ, AUDIO_HZ, _pink): a small synthetic raw (1024 Hz) ECoG participant with
# known ground truth, for the preprocessing tests (test_preprocess_*.py, test_chunked.py): per-channel
# high-gamma envelopes (smooth, speech-locked) modulating 70-170 Hz band-limited noise, on top of 1/f
# background, a common (reference) component, 60 Hz mains and white noise, plus one bad channel with huge
# noise. Audio is a 16 kHz voiced "word" at each trial.
RAW_HZ = 1024.0
AUDIO_HZ = 16000


def _pink(rng, n, n_ch, exponent=2.0):
    """Noise with power ~ 1 / f**exponent (ECoG background is close to 1/f^2), unit SD."""
    spec = np.fft.rfft(rng.standard_normal((n, n_ch)), axis=0)
    f = np.fft.rfftfreq(n, 1 / RAW_HZ)
    spec /= (np.maximum(f, 1.0) ** (exponent / 2))[:, None]
    x = np.fft.irfft(spec, n, axis=0)
    return x / x.std(axis=0)


def make_raw_recording(duration_s: float = 40.0, n_channels: int = 16, seed: int = 0, bad: int = 3,
                       line_hz: float = 60.0, n_trials: int | None = None, tasks: int = 2):
    """(Recording, gt_env (n_samples, n_channels) in volts) of a synthetic raw participant."""
    rng = np.random.default_rng(seed)
    n = int(duration_s * RAW_HZ)
    t = np.arange(n) / RAW_HZ
    n_trials = n_trials or int((duration_s - 2.0) // 1.6)
    onsets = 1.0 + np.arange(n_trials) * 1.6 + rng.uniform(0, 0.2, n_trials)
    durs = rng.uniform(0.35, 0.6, n_trials)
    keep = onsets + durs < duration_s - 0.3
    onsets, durs = onsets[keep], durs[keep]
    # ground-truth envelopes: baseline + per-channel gain x smoothed speech activity with a lag
    act = np.zeros(n)
    for on, d in zip(onsets, durs):
        act[int(on * RAW_HZ): int((on + d) * RAW_HZ)] = 1.0
    sos = ss.butter(2, 6.0, fs=RAW_HZ, output="sos")
    drive = np.stack([np.roll(ss.sosfiltfilt(sos, act), int(rng.integers(-80, 80))) for _ in range(n_channels)], 1)
    slow = ss.sosfiltfilt(ss.butter(2, 3.0, fs=RAW_HZ, output="sos"), rng.standard_normal((n, n_channels)), axis=0)
    slow /= slow.std(axis=0)
    gt_env = 4e-6 * (1.0 + rng.uniform(8.0, 15.0, n_channels) * np.clip(drive, 0, None) + 0.3 * np.abs(slow))
    carrier = ss.sosfiltfilt(ss.butter(4, [70, 170], btype="bandpass", fs=RAW_HZ, output="sos"),
                             rng.standard_normal((n, n_channels)), axis=0)
    carrier /= carrier.std(axis=0)
    common = _pink(rng, n, 1)
    raw = (gt_env * carrier + 30e-6 * _pink(rng, n, n_channels) + 15e-6 * common
           + 15e-6 * np.sin(2 * np.pi * line_hz * t)[:, None] * rng.uniform(0.5, 1.5, n_channels)
           + 5e-6 * np.sin(2 * np.pi * 2 * line_hz * t)[:, None]
           + 1e-6 * rng.standard_normal((n, n_channels)))
    bads = [False] * n_channels
    if bad is not None:
        raw[:, bad] = 5e-3 * rng.standard_normal(n)  # huge-noise bad channel
        bads[bad] = True
    # audio: a 150 Hz harmonic "vowel" during each trial + faint noise
    n_audio = int(duration_s * AUDIO_HZ)
    ta = np.arange(n_audio) / AUDIO_HZ
    audio = 1e-3 * rng.standard_normal(n_audio)
    for on, d in zip(onsets, durs):
        a, b = int(on * AUDIO_HZ), int((on + d) * AUDIO_HZ)
        tt = ta[a:b]
        f0 = 150 + 20 * np.sin(2 * np.pi * 2 * (tt - on))
        ph = 2 * np.pi * np.cumsum(f0) / AUDIO_HZ
        w = sum((1.0 / k) * np.sin(k * ph) for k in range(1, 20))
        audio[a:b] += 0.2 * w * np.hanning(b - a)
    side = int(np.sqrt(n_channels))
    ch = make_channel_table([f"E{i}" for i in range(n_channels)], "ecog", bad=bads,
                            row=np.arange(n_channels) // side, col=np.arange(n_channels) % side)
    words = ["ba", "da", "ga", "pa", "ta"]
    task_names = [f"task{k}" for k in range(tasks)]
    trials = make_trial_table(onsets, onsets + durs, [words[i % 5] for i in range(len(onsets))],
                              [task_names[(i * tasks) // len(onsets)] for i in range(len(onsets))])
    rec = Recording(neural=raw.astype(np.float32), neural_sfreq_hz=RAW_HZ, neural_kind="raw",
                    audio=audio.astype(np.float32), audio_sfreq_hz=AUDIO_HZ, channels=ch, trials=trials,
                    meta=RecordingMeta(participant_id="synth", sex="M", source_format="synthetic"), neural_unit="V")
    return rec, gt_env


# --------------------------------------------------------------------------- evaluation test set
# speech_utterances, make_test_set, PerfectDecoder (with N_LEAD, N_TARGET, N_CH, PHRASES): real speech
# (shipped corpus, else flite) in a TestSet of 8 windows of N_LEAD + N_TARGET frames over N_CH random neural
# channels, and a "perfect" decoder that recognises each test window and returns its reference. Used by
# tests/test_evaluate.py, tests/test_report.py and (speech_utterances) tests/test_metrics.py.
N_LEAD, N_TARGET, N_CH = 16, 256, 8
PHRASES = ("seven bright oranges", "the red balloon", "please open the door", "a cup of tea",
           "twelve small boats", "green summer hills", "my father's garden", "quiet evening rain")


def speech_utterances(folder: Path, n: int) -> list[np.ndarray]:
    """n real utterances (~1.5 s) at 16 kHz: three words of one voice of the shipped corpus joined by
    100 ms pauses; if the corpus is missing, phrases rendered by flite into `folder`."""
    try:
        from neurovox.simulate.corpus import load_corpus

        corpus = load_corpus()
    except (ImportError, DataError):
        corpus = None
    if corpus is not None:
        words = [u.audio for u in corpus.utterances if u.voice == corpus.voices[0]]
        gap = np.zeros(1600)
        return [np.concatenate([words[3 * i], gap, words[3 * i + 1], gap, words[3 * i + 2]]).astype(np.float64)
                for i in range(n)]
    import soundfile as sf

    flite = shutil.which("flite")
    assert flite is not None, "tests need neurovox.simulate.corpus.load_corpus() or the flite binary"
    waves = []
    for i, text in enumerate(PHRASES[:n]):
        path = folder / f"u{i}.wav"
        subprocess.run([flite, "-t", text, "-o", str(path)], check=True)
        x, sr = sf.read(path)
        waves.append(resample_poly(x, 16_000, sr))
    return waves


@functools.lru_cache(maxsize=2)
def make_test_set(folder: str, n_trials: int = 8) -> C.TestSet:
    """TestSet of `n_trials` utterances (`speech_utterances`, rendered into `folder` if need be), each placed
    16 frames into a window of N_TARGET frames, with random neural windows (seed 0), a flat f0 contour and
    fixed formants. Cached per (folder, n_trials): callers must not modify it."""
    rng = np.random.default_rng(0)
    waves = speech_utterances(Path(folder), n_trials)
    n_samples = N_TARGET * 128
    audio = np.zeros((n_trials, n_samples), dtype=np.float32)
    mask = np.zeros((n_trials, N_TARGET), dtype=bool)
    for i, w in enumerate(waves):
        w = w[: n_samples - 16 * 128] / np.abs(w).max() * 0.5
        audio[i, 16 * 128: 16 * 128 + len(w)] = w
        mask[i, 16: 16 + len(w) // 128] = True
    audio += 1e-4 * rng.standard_normal(audio.shape).astype(np.float32)
    mel = C.audio_to_mel_db(audio)
    series = rng.standard_normal((n_trials * 320 + 200, N_CH)).astype(np.float32)
    starts = 100 + 320 * np.arange(n_trials)
    windows = C.windows_from_series(series, starts, N_LEAD + N_TARGET)
    t = np.arange(N_TARGET) / 125.0
    f0 = np.where(mask, 120 + 10 * np.sin(2 * np.pi * t), 0.0)
    formants = np.stack([np.full_like(t, 500.0), np.full_like(t, 1500.0), np.full_like(t, 2500.0),
                         np.full_like(t, 3500), np.full_like(t, 4500), np.full_like(t, 5500)], -1)
    formants = np.broadcast_to(formants, (n_trials, N_TARGET, 6)).copy()
    return C.TestSet(neural_windows=windows, mel_db=mel, audio=audio, speech_mask=mask, n_lead_frames=N_LEAD,
                     start_frames=starts, neural_series=series, labels=[f"utterance {i}" for i in range(n_trials)],
                     f0_hz=f0, formants_hz=formants,
                     # plumbing only: a real test set takes this from the training trials
                     train_mel_mean_db=mel[mask].mean(0))


def make_word_test_set(n_trials: int) -> C.TestSet:
    """TestSet of `n_trials` single words of the shipped corpus (voice flite rms, every 6th word), each 16 frames
    into its window, with random neural windows (seed 0) and the corpus's 50 words as the ASR vocabulary."""
    from neurovox.simulate.corpus import load_corpus

    corpus = load_corpus()
    rng = np.random.default_rng(0)
    utt = corpus.for_voice("flite_rms")
    labels = sorted(utt)[::6][:n_trials]
    n_samples = N_TARGET * 128
    audio = np.zeros((n_trials, n_samples), np.float32)
    mask = np.zeros((n_trials, N_TARGET), bool)
    for i, w in enumerate(labels):
        wave = utt[w].audio[: n_samples - 16 * 128]
        audio[i, 16 * 128: 16 * 128 + len(wave)] = wave / np.abs(wave).max() * 0.5
        mask[i, 16: 16 + len(wave) // 128] = True
    series = rng.standard_normal((n_trials * 320 + 200, N_CH)).astype(np.float32)
    starts = 100 + 320 * np.arange(n_trials)
    mel = C.audio_to_mel_db(audio)
    return C.TestSet(neural_windows=C.windows_from_series(series, starts, N_LEAD + N_TARGET), mel_db=mel, audio=audio,
                     speech_mask=mask, n_lead_frames=N_LEAD, start_frames=starts, neural_series=series, labels=labels,
                     f0_hz=np.zeros((n_trials, N_TARGET)), formants_hz=np.full((n_trials, N_TARGET, 6), 1000.0),
                     train_mel_mean_db=mel[mask].mean(0), vocabulary=tuple(corpus.words), asr_note="")


@dataclass
class PerfectDecoder:
    """Recognises each known test window (nearest neighbour) and returns that trial's reference."""

    test: C.TestSet
    n_lead_frames: int = N_LEAD
    n_target_frames: int = N_TARGET
    synthesis: str = "formant"

    def decode(self, neural_windows, generator=None):
        flat = self.test.neural_windows.reshape(len(self.test.neural_windows), -1)
        d = ((neural_windows.reshape(len(neural_windows), 1, -1) - flat[None]) ** 2).sum(-1)
        idx = d.argmin(1)
        params = np.zeros((len(idx), self.n_target_frames, 18), dtype=np.float32)
        params[..., 0] = self.test.f0_hz[idx] + 5.0
        params[..., 3:6] = self.test.formants_hz[idx][..., :3] * 1.05
        return {"mel_db": self.test.mel_db[idx].copy(), "audio": self.test.audio[idx].copy(), "params": params}


# --------------------------------------------------------------------------- toy run config
# RunConfig (with TrainSection): a small two-level config (tests/test_config.py, tests/test_runs.py).
@dataclass
class TrainSection:
    max_epochs: int = 10          # passes over the training windows
    lr: float = 1e-3              # learning rate
    model: Literal["resnet", "lstm"] = "resnet"
    channels: tuple[int, ...] = (16, 32)


@dataclass
class RunConfig:
    seed: int = 0
    train: TrainSection = field(default_factory=TrainSection)


# --------------------------------------------------------------------------- command-line children
# tiny_cli (fixture), train_argv, run_cli, CliChild, load_pt, SPEECH_ARGS, DECODER_ARGS, LIKELIHOOD_ARGS:
# `neurovox ...` (neurovox.cli.main) in children forked from a multiprocessing fork server that has imported
# torch, Lightning and neurovox once (tests/test_resume.py, tests/test_reproducibility.py). The server
# forks before any torch computation has started a thread pool, so the children are clean processes that
# differ from `neurovox ...` in a shell only by not re-importing.
CLI_TIMEOUT_S = 300
_FORK_SERVER = multiprocessing.get_context("forkserver")
_FORK_SERVER.set_forkserver_preload(["torch", "lightning.pytorch", "neurovox.cli", "neurovox.decoders.train",
                                     "neurovox.encoder.train", "neurovox.diffusion.train_likelihood", "tests.conftest"])

SPEECH_ARGS = ["--set", "prepare.praat=false", "--set", "split.scheme=kfold", "--set", "split.n_folds=5", "--set", "speech.max_steps=12",
               "--set", "speech.batch_size=2", "--set", "speech.n_frames=64", "--set", "speech.checkpoint_every=4",
               "--set", "speech.n_examples=0", "--set", "speech.warmup_steps=2", "--set", "encoder.hidden=16",
               "--set", "encoder.n_blocks=1", "--set", "encoder.dropout=0.1"]
DECODER_ARGS = ["--model", "lstm", "--set", "prepare.praat=false", "--set", "split.scheme=kfold", "--set", "split.n_folds=5",
                "--set", "decoder.n_target_frames=64", "--set", "decoder.n_lead_frames=8", "--set", "decoder.batch_size=4",
                "--set", "decoder.max_epochs=4", "--set", "decoder.patience=10", "--set", "decoder.spec_ffts=[512]",
                "--set", "decoder.train_crop_frames=32", "--set", "decoder.ref_only_steps=8",
                "--set", "decoder.rnn_hidden=16", "--set", "decoder.rnn_layers=1", "--set", "decoder.dropout=0.2",
                "--set", "decoder.ema_decay=0.9", "--set", "decoder.target=formant"]
LIKELIHOOD_ARGS = ["--set", "prepare.praat=false", "--set", "split.scheme=kfold", "--set", "split.n_folds=5",
                   "--set", "window.n_target_frames=64", "--set", "window.n_lead_frames=8", "--set", "likelihood.hidden=16",
                   "--set", "likelihood.n_blocks=2", "--set", "likelihood.batch_size=4", "--set", "likelihood.max_epochs=4",
                   "--set", "likelihood.patience_epochs=10"]


@pytest.fixture(scope="module")
def tiny_cli(tmp_path_factory):
    """(data file, scratch root, environment): 20 words on the 8x8 grid (seed 1), feature cache shared by all
    runs of a test module (module-scoped: each module that uses it simulates its own)."""
    from neurovox.io import write_flinker_hdf5
    from neurovox.simulate import SimulateConfig, simulate_participant

    root = tmp_path_factory.mktemp("resume")
    rec, _ = simulate_participant(SimulateConfig(n_trials=20), 1, kind="high_gamma")
    env = {"NEUROVOX_CACHE": str(root / "cache")}
    return write_flinker_hdf5(rec, root / "sim.h5"), root, env


def train_argv(tiny_cli, stage: str, out: Path, extra: list[str]) -> list[str]:
    """`neurovox train STAGE` on `tiny_cli`'s data into `out`, seed 3, plus `extra` arguments."""
    return ["train", stage, "--data", str(tiny_cli[0]), "--out", str(out), "--seed", "3", *extra]


def _cli_child(argv: list[str], env: dict[str, str], log: str) -> None:
    """Child process: `neurovox ARGV` with its stdout and stderr in the file `log`."""
    os.environ.update(env)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    # One thread: tiny models run several times faster on a loaded machine than with two threads waiting
    # for each other, and the result does not depend on how many cores the machine has.
    torch.set_num_threads(1)
    # A fresh interpreter seeds numpy's and python's global generators from the OS; so do the children
    # (forked, they would all inherit one state), so that an unseeded use of them shows up as a difference.
    np.random.seed()
    random.seed()
    from neurovox.cli import main

    sys.exit(main(argv))


class CliChild:
    """A running `neurovox ARGV` (see `_cli_child`)."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.log = Path(env["NEUROVOX_CACHE"]).parent / f"log-{time.monotonic_ns()}.txt"
        self.process = _FORK_SERVER.Process(target=_cli_child, args=(argv, env, str(self.log)))
        self.process.start()

    def wait(self) -> tuple[int, str]:
        self.process.join(CLI_TIMEOUT_S)
        if self.process.exitcode is None:
            self.process.kill()
            self.process.join()
        return self.process.exitcode, self.log.read_text() if self.log.exists() else ""


def run_cli(argv: list[str], env: dict[str, str]) -> str:
    """Run `neurovox ARGV` to the end in a forked child; asserts exit status 0, returns its output."""
    code, out = CliChild(argv, env).wait()
    assert code == 0, out[-4000:]
    return out


def load_pt(path: Path) -> dict:
    """A torch file (checkpoint or weights) with everything in it, on CPU."""
    return torch.load(path, map_location="cpu", weights_only=False)
