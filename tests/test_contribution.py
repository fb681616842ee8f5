"""Occlusion analysis (`neurovox contribution`): what it measures, its outputs, its errors, and (slow group)
its agreement with the simulator's ground-truth encoding strength."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from neurovox.errors import RunError
from neurovox.evaluate import chance as C
from neurovox.evaluate.contribution import contribution_map, electrode_contributions
from neurovox.io.recording import make_channel_table
from tests.conftest import N_LEAD, N_TARGET, make_test_set


@dataclass
class ChannelDecoder:
    """Reads only some channels: the reference mel where channels 0-1 carry a gain of 1, faded by what they
    lost; channel 2 is 'bad' (masked: multiplied by 0 before use)."""

    test: C.TestSet
    n_lead_frames: int = N_LEAD
    n_target_frames: int = N_TARGET

    def decode_mel(self, windows):
        x = windows[:, :, :3] * np.array([1.0, 1.0, 0.0])  # channel 2 masked like a bad contact
        weight = np.abs(x).mean((1, 2), keepdims=True)  # (n, 1, 1)
        intact = np.abs(self.test.neural_windows[:, :, :3] * np.array([1.0, 1.0, 0.0])).mean((1, 2), keepdims=True)
        noise = np.random.default_rng(0).standard_normal(self.test.mel_db.shape)
        frac = weight / intact
        return self.test.mel_db * frac + 10 * (1 - frac) * noise + self.test.train_mel_mean_db * (1 - frac)


@pytest.fixture(scope="module")
def test_set(tmp_path_factory):
    return make_test_set(str(tmp_path_factory.mktemp("speech")), n_trials=8)


def test_occlusion_finds_the_used_channels_and_masked_ones_contribute_nothing(test_set):
    n_ch = test_set.neural_windows.shape[-1]
    channels = make_channel_table([f"G{i}" for i in range(n_ch)], bad=[i == 2 for i in range(n_ch)],
                                  row=[i // 4 for i in range(n_ch)], col=[i % 4 for i in range(n_ch)])
    table = electrode_contributions(ChannelDecoder(test_set), test_set, channels, n_boot=200)
    assert list(table["name"]) == list(channels["name"]) and len(table) == n_ch
    used, unused = table.iloc[:2], table.iloc[2:]
    assert (used["drop_pcc"] > 0.05).all() and (used["drop_pcc_ci_low"] > 0).all()
    assert (used["drop_pcc_tilt"] > 0.05).all()
    assert (unused["drop_pcc"] == 0).all() and (unused["drop_pcc_tilt"] == 0).all()  # incl. the bad channel 2
    grid = contribution_map(table)
    assert grid.shape == (2, 4) and grid[0, 0] == table["drop_pcc_tilt"].iloc[0]


def test_contribution_refuses_unfinished_and_non_decoder_runs(tmp_path, capsys):
    from neurovox.cli import main
    from neurovox.runs import start_run

    @dataclass
    class Cfg:
        seed: int = 0  # RNG seed

    data = tmp_path / "a.h5"
    data.write_bytes(b"x")
    start_run(tmp_path / "run", kind="decoder", config=Cfg(), seed=0, data_path=data)  # never finished
    assert main(["contribution", "--run", str(tmp_path / "run"), "--data", str(data), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "unfinished (no DONE file)" in err and "needs a finished decoder run" in err
    start_run(tmp_path / "speech", kind="speech", config=Cfg(), seed=0, data_path=data).mark_done()
    with pytest.raises(RunError, match="'speech' run"):
        from neurovox.evaluate.contribution import contribution_run

        contribution_run(tmp_path / "speech", data, tmp_path / "o")
    assert not (tmp_path / "o").exists()  # nothing half-written


@pytest.mark.slow
def test_contributions_follow_the_ground_truth_encoding_strength(tmp_path):
    """Default participant (realistic encoding, 300 words, SNR 0 dB): the linear baseline's occlusion map
    against the simulator's per-electrode own-speech encoding SNR (measured Spearman r 0.70; bar 0.6),
    and the file's bad channels contribute exactly 0 (about 2 min)."""
    from scipy.stats import spearmanr

    from neurovox.cli import main
    from neurovox.simulate import encoding_strength

    sim, run, out, cache = tmp_path / "sim", tmp_path / "lin", tmp_path / "contrib", tmp_path / "cache"
    assert main(["simulate", "--out", str(sim), "--kind", "high_gamma", "--n-trials", "300", "--seed", "0"]) == 0
    data = next(sim.glob("*.h5"))
    assert main(["train", "decoder", "--data", str(data), "--model", "linear", "--out", str(run),
                 "--cache-dir", str(cache)]) == 0
    assert main(["contribution", "--run", str(run), "--data", str(data), "--out", str(out),
                 "--cache-dir", str(cache), "--n-boot", "300"]) == 0
    table = pd.read_csv(out / "contributions.csv")
    names, strength = encoding_strength(sim)
    assert list(table["name"]) == names
    r = spearmanr(strength, table["drop_pcc_tilt"]).statistic
    assert r >= 0.6, r
    bad = json.loads((sim / "ground_truth.json").read_text())["bad_channel_names"]
    assert (table.set_index("name").loc[bad, "drop_pcc_tilt"] == 0).all() and table.set_index("name").loc[bad, "bad"].all()
    assert (out / "figures" / "contribution_pcc_tilt.png").stat().st_size > 1000
    assert "Strongest electrodes" in (out / "report.html").read_text()
