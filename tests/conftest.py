"""Shared test fixtures. Keep fixtures session-scoped and small: the whole suite must run in
well under 15 minutes on 2 CPU cores."""

import os

import pytest
import torch

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
def speech_run_small(sim_hg_8x8, tmp_path_factory):
    """Path of a speech autoencoder run (kind "speech") trained briefly on `sim_hg_8x8`'s audio: 60 steps
    of a 0.4 M-parameter encoder, the settings of tests/test_encoder.py (held-out resynthesis PCC ~0.79).
    Every simulated participant with seed 0 speaks with the same voice, so the decoder tests of all
    layouts and SNRs train against this one frozen speech model (its reference parameters, its synth)."""
    import lightning

    from neurovox.config import load_config
    from neurovox.encoder import SpeechRunConfig, train_speech_model
    from neurovox.preprocess import prepare
    from neurovox.runs import start_run

    cfg = load_config(SpeechRunConfig, overrides=[
        "speech.max_steps=60", "speech.batch_size=4", "speech.lr=0.003", "speech.warmup_steps=10",
        "speech.checkpoint_every=40", "speech.n_examples=1", "encoder.hidden=128", "encoder.n_blocks=4"])
    run = start_run(tmp_path_factory.mktemp("speech_small") / "run", kind="speech", config=cfg, seed=cfg.seed)
    lightning.seed_everything(0, verbose=False)
    train_speech_model(prepare(sim_hg_8x8[0], cfg.prepare, use_cache=False), cfg, run, progress=False)
    run.mark_done()
    return run.path


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
