"""Config loading: defaults <- YAML <- --set overrides, typed, unknown keys rejected with a suggestion."""

import dataclasses
import importlib

import pytest

from neurovox.config import from_dict, load_config, parse_overrides, save_config, to_dict
from neurovox.errors import ConfigError
from tests.conftest import RunConfig


def test_defaults_yaml_and_overrides_layer(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  max_epochs: 3\n  lr: 0.01\n")
    cfg = load_config(RunConfig, path, ["train.max_epochs=5", "seed=7", "train.channels=[8, 8, 8]"])
    assert cfg.train.max_epochs == 5 and cfg.train.lr == 0.01 and cfg.seed == 7
    assert cfg.train.channels == (8, 8, 8)


def test_int_accepted_for_float_but_not_string_for_int():
    assert load_config(RunConfig, None, ["train.lr=1"]).train.lr == 1.0
    with pytest.raises(ConfigError, match="train.max_epochs.*integer"):
        load_config(RunConfig, None, ["train.max_epochs=many"])
    # YAML 1.1 reads an exponent without a dot as a string; a float key takes it as the number it is
    assert load_config(RunConfig, None, ["train.lr=3e-3"]).train.lr == 0.003
    for bad in ("fast", "nan"):
        with pytest.raises(ConfigError, match="train.lr.*expects a number"):
            load_config(RunConfig, None, [f"train.lr={bad}"])


def test_unknown_key_suggests_closest():
    with pytest.raises(ConfigError, match=r"Unknown config key 'train.max_epoch'.*Did you mean \"max_epochs\""):
        load_config(RunConfig, None, ["train.max_epoch=5"])
    with pytest.raises(ConfigError, match="Unknown config key 'trian'"):
        load_config(RunConfig, None, ["trian.lr=1"])


def test_literal_rejects_other_values():
    with pytest.raises(ConfigError, match="allowed values are 'resnet', 'lstm', got 'resnt'.*Did you mean"):
        load_config(RunConfig, None, ["train.model=resnt"])


def test_save_load_round_trip(tmp_path):
    cfg = load_config(RunConfig, None, ["train.lr=0.5", "train.model=lstm"])
    save_config(cfg, tmp_path / "config.yaml")
    again = load_config(RunConfig, tmp_path / "config.yaml")
    assert again == cfg and to_dict(again)["train"]["channels"] == [16, 32]


# Every run config a command saves in its run directory, with non-default values of several types (nested
# tuples, floats, strings, literals, booleans, a mapping) in several of its sections: {section: {field: value}}
# (or {field: value} for a top-level field such as seed), applied to the defaults with dataclasses.replace,
# so that the expected config does not itself go through from_dict.
RUN_CONFIGS = [
    ("neurovox.encoder.train", "SpeechRunConfig", {
        "seed": 11, "prepare": {"band_low_hz": 65.5, "seeg_reference": "bipolar", "praat": False},
        "split": {"scheme": "kfold", "n_folds": 5}, "synth": {"pitch_range": "male", "noise_gain": 0.75},
        "encoder": {"dropout": 0.15}, "speech": {"device": "cpu", "w_praat": 0.5}}),
    ("neurovox.decoders.config", "DecoderRunConfig", {
        "seed": 3, "decoder": {"model": "swin", "spec_ffts": (512, 2048), "resnet_widths": (8, 16, 32, 64),
                               "swin_depths": (1, 3), "lr": 0.0025, "target": "formant", "aug_gain_sd": 0.2},
        "prepare": {"line_noise_hz": 50.0}, "split": {"fold": 2}}),
    ("neurovox.diffusion.train_prior", "PriorRunConfig", {
        "denoiser": {"channels": (16, 32), "attention": False},
        "prior": {"schedule": "linear", "prediction": "v", "lr": 0.0003, "speech_paths": ("a.wav", "sub dir/b.wav"),
                  "exclude_voices": ("voice_2",), "split_scheme": "kfold"}}),
    ("neurovox.diffusion.train_likelihood", "LikelihoodRunConfig", {
        "window": {"n_target_frames": 64, "n_lead_frames": 8},
        "likelihood": {"whisper_dir": "/models/whisper tiny", "input_noise": 0.05, "hidden": 96},
        "prepare": {"causal": True}, "split": {"scheme": "kfold"}}),
    ("neurovox.diffusion.decode", "DpsRunConfig", {
        "dps": {"prior_run": "runs/prior", "likelihood_run": "runs/likelihood", "algorithm": "dps", "sampler": "ddim",
                "eta": 0.25, "guidance_scale": 2.5, "vocoder": "formant", "speech_run": "runs/speech"},
        "window": {"n_target_frames": 64}, "prepare": {"envelope_lowpass_hz": 12.5}}),
    ("neurovox.simulate.output", "SimulateRunConfig", {
        "seed": 5, "simulate": {"layout": "seeg", "n_seeg_shafts": 3, "hg_band_hz": (60.0, 180.0), "snr_db": -3.5,
                                "participant_id": "sim07", "encoding": "linear",
                                "extra": {"gain": 2.0, "tags": ["a", "b"]}}}),
    ("neurovox.commands.preprocess", "PreprocessRunConfig", {
        "high_gamma": {"line_noise_hz": 50.0, "zscore": "none", "ecog_reference": "none", "baseline_start_s": -0.3,
                       "baseline_split": "kfold", "n_jobs": 1}}),
]


@pytest.mark.parametrize(("module", "name", "changes"), RUN_CONFIGS, ids=[c[1] for c in RUN_CONFIGS])
def test_every_run_config_round_trips_non_default_values(module, name, changes, tmp_path):
    """to_dict -> from_dict and save_config -> load_config give back the same run config, non-default
    values included, with the same types (a tuple that came back as a list would not compare equal)."""
    cls = getattr(importlib.import_module(module), name)
    defaults = cls()
    cfg = dataclasses.replace(defaults, **{
        key: dataclasses.replace(getattr(defaults, key), **value) if dataclasses.is_dataclass(getattr(defaults, key))
        else value for key, value in changes.items()})
    for key, value in changes.items():  # every change is a real change: the round trip carries non-defaults
        for field_name, v in (value.items() if isinstance(value, dict) else [(None, value)]):
            default = getattr(defaults, key) if field_name is None else getattr(getattr(defaults, key), field_name)
            assert v != default, (key, field_name, v)
    assert from_dict(cls, to_dict(cfg)) == cfg
    save_config(cfg, tmp_path / "config.yaml")
    assert load_config(cls, tmp_path / "config.yaml") == cfg


def test_bad_override_syntax():
    with pytest.raises(ConfigError, match="must look like section.key=value"):
        parse_overrides(["train.lr"])


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(RunConfig, tmp_path / "nope.yaml")
