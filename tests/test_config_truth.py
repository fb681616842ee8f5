"""The saved config is what ran, one precedence for every command, and no silent fallbacks.

Each test builds the situation a fallback used to hide and expects the refusal (or the recorded value).
"""

import argparse
import json
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch

from neurovox.errors import DataError, RunError
from neurovox.runs import open_run, start_run


@dataclass
class _Section:
    lr: float = 1e-3
    widths: tuple[int, ...] = (16, 32)


@dataclass
class _Cfg:
    seed: int = 0
    train: _Section = field(default_factory=_Section)


# ------------------------------------------------------------------------------------- resuming a run

def test_resuming_with_another_config_names_the_differing_keys(tmp_path):
    start_run(tmp_path / "run", kind="decoder", config=_Cfg(), seed=0)
    with pytest.raises(RunError, match=r"config train\.lr: 0\.001 -> 0\.01; config train\.widths"):
        start_run(tmp_path / "run", kind="decoder", config=_Cfg(train=_Section(lr=1e-2, widths=(8,))), seed=0)


def test_resuming_on_another_data_file_or_speech_run_is_refused(tmp_path):
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    a.write_bytes(b"recording a")
    b.write_bytes(b"recording b")
    out = tmp_path / "run"
    start_run(out, kind="decoder", config=_Cfg(), seed=0, data_path=a, extra_meta={"speech_run": "/runs/s1"})
    # the same inputs resume
    assert start_run(out, kind="decoder", config=_Cfg(), seed=0, data_path=a,
                     extra_meta={"speech_run": "/runs/s1"}).path == out
    with pytest.raises(RunError, match=r"data file: .*a\.h5.* -> .*b\.h5"):
        start_run(out, kind="decoder", config=_Cfg(), seed=0, data_path=b, extra_meta={"speech_run": "/runs/s1"})
    with pytest.raises(RunError, match=r"speech_run: '/runs/s1' -> '/runs/s2'"):
        start_run(out, kind="decoder", config=_Cfg(), seed=0, data_path=a, extra_meta={"speech_run": "/runs/s2"})
    assert json.loads((out / "run.json").read_text())["speech_run"] == "/runs/s1"  # nothing was rewritten


# ---------------------------------------------------------------------------------------- precedence

def _args(**kw) -> argparse.Namespace:
    base = {"config": None, "overrides": [], "seed": None, "quick": False}
    return argparse.Namespace(**{**base, **kw})


def test_one_precedence_defaults_quick_config_flags_set(tmp_path):
    """defaults < --quick < --config < flags < --set, the same for every command."""
    from neurovox.cli import config_from_args

    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("train:\n  lr: 0.5\nseed: 4\n")
    quick = {"train": {"lr": 0.1, "widths": [4]}}
    assert config_from_args(_Cfg, _args(quick=True), quick=quick).train == _Section(0.1, (4,))
    assert config_from_args(_Cfg, _args(quick=True, config=str(cfg_file)), quick=quick).train.lr == 0.5
    flagged = config_from_args(_Cfg, _args(config=str(cfg_file), seed=7), ["train.lr=0.25"])
    assert (flagged.seed, flagged.train.lr) == (7, 0.25)
    both = config_from_args(_Cfg, _args(config=str(cfg_file), seed=7, overrides=["train.lr=0.125", "seed=9"]),
                            ["train.lr=0.25"])
    assert (both.seed, both.train.lr) == (9, 0.125)


def test_simulate_set_beats_its_flags():
    """`neurovox simulate` used to let --layout beat --set simulate.layout (the other commands the reverse)."""
    from neurovox.cli import build_parser
    from neurovox.commands.simulate import build_config

    args = build_parser().parse_args(["simulate", "--out", "x", "--layout", "seeg", "--n-trials", "40",
                                      "--set", "simulate.layout=grid8x8"])
    cfg = build_config(args)
    assert cfg.simulate.layout == "grid8x8" and cfg.simulate.n_trials == 40


# ----------------------------------------------------------------------------- fallbacks made visible

def test_evaluate_refuses_a_run_without_a_recorded_data_hash(tmp_path):
    from neurovox.evaluate.evaluate import check_data_hash

    data = tmp_path / "a.h5"
    data.write_bytes(b"some recording")
    run = start_run(tmp_path / "run", kind="decoder", config=_Cfg(), seed=0)  # no data_path: no hash recorded
    with pytest.raises(RunError, match="does not record the data file it was trained on"):
        check_data_hash(run.path, data)
    assert check_data_hash(run.path, data, allow_other_data=True)["matches_training_data"] is False


def test_flinker_reader_lists_the_conventions_it_assumed(tmp_path, sim_hg_8x8):
    import h5py

    from neurovox.io import read_recording, write_flinker_hdf5

    path = write_flinker_hdf5(sim_hg_8x8[0], tmp_path / "plain.h5")
    with h5py.File(path, "a") as f:
        for key in ("neural_sfreq_hz", "audio_sfreq_hz", "neural_kind"):
            if key in f.attrs:
                del f.attrs[key]
    derived = " | ".join(read_recording(path).meta.derived)
    for key in ("neural_sfreq_hz attribute missing -> 125 Hz", "audio_sfreq_hz attribute missing -> 16000 Hz",
                "neural_kind attribute missing -> high_gamma"):
        assert key in derived, derived
    assert "attribute missing" not in " ".join(read_recording(write_flinker_hdf5(
        sim_hg_8x8[0], tmp_path / "full.h5")).meta.derived)


def test_decoder_refuses_a_split_without_validation_trials(sim_hg_path, tmp_path, monkeypatch):
    """Early stopping and model selection used to fall back to the training loss; now nothing is written."""
    import neurovox.preprocess.splits as splits
    from neurovox.config import from_dict
    from neurovox.decoders.train import DecoderRunConfig, quick_settings, train_decoder

    monkeypatch.setattr(splits, "_pick_val", lambda candidates, fraction, rng: np.zeros(0, np.int64))
    quick = quick_settings("linear")
    cfg = from_dict(DecoderRunConfig, {**quick, "decoder": {**quick["decoder"], "model": "linear"},
                                       "prepare": {"praat": False}})
    with pytest.raises(DataError, match="has no val trials"):
        train_decoder(sim_hg_path, tmp_path / "run", cfg, progress=False, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "run").exists()


def test_speech_run_config_holds_the_voice_ranges_that_ran(sim_hg_path, tmp_path, monkeypatch):
    """speech.auto_voice picks pitch and formant ranges from the participant's sex: config.yaml must hold
    the picked ranges (it used to keep the defaults while training used others)."""
    import neurovox.encoder.train as speech_train
    from neurovox.encoder.train import SpeechRunConfig, train_speech_run
    from neurovox.io import read_recording

    seen = {}

    def fake_training(rec, cfg, run, progress=True):  # the ranges the model would be built with
        seen["synth"] = cfg.synth
        return {"pcc_mel_db": 0.0, "stoi": 0.0}

    monkeypatch.setattr(speech_train, "train_speech_model", fake_training)
    sex = read_recording(sim_hg_path).meta.sex
    voice = {"M": "male", "F": "female"}[sex]
    train_speech_run(sim_hg_path, tmp_path / "speech", SpeechRunConfig())
    saved = open_run(tmp_path / "speech").config["synth"]
    assert saved["pitch_range"] == voice == seen["synth"].pitch_range
    assert saved["formant_range"] == voice == seen["synth"].formant_range


def test_decoder_training_draws_new_synthesizer_noise_every_step(monkeypatch):
    """The default synthesizer seeded its own noise, so every training step heard the same noise."""
    from neurovox.decoders import build_decoder
    from neurovox.decoders.config import DecoderTrainConfig
    from neurovox.decoders.lightning_module import DecoderModule
    from neurovox.decoders.speech import FrozenSpeech
    from neurovox.synth import N_RAW, FormantSynth, SynthConfig

    torch.manual_seed(0)
    decoder = build_decoder("lstm", n_channels=4, n_out=N_RAW, causal=True, hidden=8)
    module = DecoderModule(decoder, FrozenSpeech(FormantSynth(SynthConfig())), DecoderTrainConfig(w_ref=0.0, target="formant"), seed=0)
    g = torch.Generator().manual_seed(1)
    batch = {"neural": torch.randn(2, 16 + 32, 4, generator=g), "mel_db": torch.zeros(2, 32, 80),
             "audio": 0.1 * torch.randn(2, 32 * 128, generator=g), "speech_mask": torch.ones(2, 32, dtype=torch.bool),
             "spec_power": torch.zeros(2, 32, 256), "start_frame": torch.zeros(2, dtype=torch.long)}

    step = {"now": 0}
    monkeypatch.setattr(DecoderModule, "global_step", property(lambda self: step["now"]))  # no trainer here

    def loss_at(global_step: int, training: bool) -> float:
        module.train(training)
        decoder.eval()  # no dropout: only the synthesizer's noise may differ between calls
        step["now"] = global_step
        with torch.no_grad():
            return float(module.losses(decoder, batch)["loss"])

    train0, train0_again, train1 = loss_at(0, True), loss_at(0, True), loss_at(1, True)
    val0, val1 = loss_at(0, False), loss_at(1, False)
    assert train0 == train0_again          # a function of (seed, step): a resumed run draws the same noise
    assert train0 != train1                # but a new draw at every step
    assert val0 == val1                    # validation: one fixed draw, comparable across epochs
