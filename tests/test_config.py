"""Config loading: defaults <- YAML <- --set overrides, typed, unknown keys rejected with a suggestion."""

from dataclasses import dataclass, field
from typing import Literal

import pytest

from neurovox.config import load_config, parse_overrides, save_config, to_dict
from neurovox.errors import ConfigError


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


def test_bad_override_syntax():
    with pytest.raises(ConfigError, match="must look like section.key=value"):
        parse_overrides(["train.lr"])


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(RunConfig, tmp_path / "nope.yaml")
