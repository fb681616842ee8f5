"""`neurovox simulate`: writes both formats + ground truth + config, reads back exactly, refuses to overwrite."""

import json

import numpy as np
import yaml

from neurovox.cli import main
from neurovox.io import read_recording
from neurovox.simulate import GroundTruth, SimulateConfig, simulate


def test_cli_writes_both_formats_and_refuses_overwrite(tmp_path, capsys):
    out = tmp_path / "sim"
    args = ["simulate", "--out", str(out), "--n-trials", "10", "--layout", "seeg", "--snr-db", "5",
            "--seed", "3", "--set", "simulate.n_seeg_shafts=2", "--set", "simulate.line_freq_hz=50"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert str(out / "sim01_high_gamma.h5") in printed and "ground_truth.npz" in printed
    names = {p.name for p in out.iterdir()}
    assert names == {"sim01_high_gamma.h5", "bids", "ground_truth.npz", "ground_truth.json", "config.yaml",
                     "simulation.json"}
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["seed"] == 3 and cfg["simulate"]["layout"] == "seeg" and cfg["simulate"]["snr_db"] == 5.0
    assert cfg["simulate"]["n_seeg_shafts"] == 2 and cfg["simulate"]["line_freq_hz"] == 50.0

    # the files hold exactly what the library simulates for that config and seed
    sim_cfg = SimulateConfig(n_trials=10, layout="seeg", snr_db=5.0, n_seeg_shafts=2, line_freq_hz=50.0)
    recs, gt = simulate(sim_cfg, 3, ("high_gamma", "raw"))
    hg = read_recording(out / "sim01_high_gamma.h5")
    np.testing.assert_array_equal(hg.neural, recs["high_gamma"].neural)
    np.testing.assert_array_equal(hg.audio, recs["high_gamma"].audio)
    assert hg.bads == recs["high_gamma"].bads and hg.neural_sfreq_hz == 125.0
    np.testing.assert_allclose(hg.trials["onset_s"], recs["high_gamma"].trials["onset_s"], atol=1e-9)
    manifest = json.loads((out / "simulation.json").read_text())
    raw = read_recording(out / manifest["files"]["swpd_nwb"])
    np.testing.assert_array_equal(raw.neural, recs["raw"].neural)
    assert raw.neural_kind == "raw" and raw.neural_sfreq_hz == 1024.0 and raw.bads == recs["raw"].bads
    np.testing.assert_allclose(raw.channels[["x", "y", "z"]].to_numpy(), recs["raw"].channels[["x", "y", "z"]].to_numpy())
    back = GroundTruth.load(out)
    np.testing.assert_array_equal(back.envelope, gt.envelope)
    assert back.seed == 3 and back.line_freq_hz == 50.0 and back.snr_db == 5.0

    # refuses to overwrite, without a traceback; --overwrite replaces
    before = (out / "ground_truth.npz").read_bytes()
    assert main(["simulate", "--out", str(out), "--n-trials", "5"]) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--overwrite" in err and "Traceback" not in err
    assert (out / "ground_truth.npz").read_bytes() == before
    assert main(["simulate", "--out", str(out), "--n-trials", "5", "--kind", "high_gamma", "--overwrite"]) == 0
    assert {p.name for p in out.iterdir()} == {"sim01_high_gamma.h5", "ground_truth.npz", "ground_truth.json",
                                               "config.yaml", "simulation.json"}


def test_cli_config_errors(tmp_path, capsys):
    assert main(["simulate", "--out", str(tmp_path / "a"), "--set", "simulate.n_trial=5"]) == 2
    err = capsys.readouterr().err
    assert "Unknown config key 'simulate.n_trial'" in err and "n_trials" in err
    assert main(["simulate", "--out", str(tmp_path / "b"), "--set", "simulate.voice=nobody", "--n-trials", "5"]) == 2
    assert "voice" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("simulate:\n  layout: hybrid128\n  n_trials: 5\n  kind: high_gamma\n")
    assert main(["simulate", "--out", str(tmp_path / "c"), "--config", str(cfg_file)]) == 0
    assert read_recording(tmp_path / "c" / "sim01_high_gamma.h5").n_channels == 128


def test_shared_fixture_file_reads_back(sim_hg_path, sim_hg_8x8):
    rec, gt = sim_hg_8x8
    back = read_recording(sim_hg_path)
    np.testing.assert_array_equal(back.neural, rec.neural)
    assert back.bads == rec.bads == [gt.ch_names[i] for i in gt.bad_channels]
    assert back.channels["row"].tolist() == rec.channels["row"].tolist()
    assert back.meta.sex == gt.sex and back.n_trials == 60
