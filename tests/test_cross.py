"""Cross-participant decoding (neurovox.cross, `train decoder --data A --data B --test-data C`): a shared
recurrent core pre-trained on two participants transfers to a third with the same encoding structure, the
learning curve is written, reruns resume stage by stage, and bad input is refused before anything is written.

Tiny configuration (LSTM of 16 units, 100 steps per stage) on 80-trial linear-encoding participants: mechanics
and transfer, not the default budget's figures (BENCHMARKS.md, "Cross-participant decoding")."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest


TINY = ["--model", "lstm", "--set", "prepare.praat=false", "--set", "decoder.n_target_frames=64",
        "--set", "decoder.n_lead_frames=8", "--set", "decoder.batch_size=4", "--set", "decoder.max_steps=100",
        "--set", "decoder.rnn_hidden=32", "--set", "decoder.lr=3e-3", "--set", "decoder.rnn_layers=1", "--set", "decoder.warmup_steps=2"]


@pytest.fixture(scope="module")
def three(tmp_path_factory):
    """Three 80-trial participants on the 8x8 grid sharing encoding_seed 7 (own voice, timeline and noise)."""
    from neurovox.io import write_flinker_hdf5
    from neurovox.simulate import SimulateConfig, simulate_participant

    root = tmp_path_factory.mktemp("cross")
    paths = []
    for i in (1, 2, 3):
        rec, _ = simulate_participant(SimulateConfig(n_trials=80, encoding="linear", encoding_seed=7,
                                                     participant_id=f"p{i}"), i, kind="high_gamma")
        paths.append(str(write_flinker_hdf5(rec, root / f"p{i}.h5")))
    return paths, root


def _train(three, out, *extra):
    from neurovox.cli import main

    paths, root = three
    return main(["train", "decoder", "--data", paths[0], "--data", paths[1], "--test-data", paths[2],
                 "--out", str(out), "--cache-dir", str(root / "cache"), *TINY, *extra])


@pytest.fixture(scope="module")
def cross_run(three):
    out = three[1] / "run"
    assert _train(three, out) == 0
    return out


def test_shared_encoding_shares_layout_and_sites_not_voice():
    from neurovox.simulate import SimulateConfig, simulate_participant

    (a, ta), (b, tb) = (simulate_participant(SimulateConfig(n_trials=10, encoding_seed=7), s, kind="high_gamma")
                        for s in (1, 2))
    assert a.channels[["row", "col", "x", "y", "z"]].equals(b.channels[["row", "col", "x", "y", "z"]])
    assert np.array_equal(ta.site_kind, tb.site_kind)
    assert not np.array_equal(a.audio[:1000], b.audio[:1000])        # own speech
    (c, tc), = [simulate_participant(SimulateConfig(n_trials=10), 2, kind="high_gamma")]
    assert not np.array_equal(tc.site_kind, tb.site_kind)           # without it each seed has its own sites


def test_cross_participant_transfers_and_writes_the_learning_curve(cross_run, three):
    result = json.loads((cross_run / "cross.json").read_text())
    pre = result["pretraining"]
    assert pre["last_loss"] < 0.9 * pre["first_loss"], pre                        # the core learns
    assert result["routed_electrodes"] == 64                                      # same grid: every electrode placed
    curve = result["curve"]
    n = [e["n_trials"] for e in curve]
    assert [e["fraction"] for e in curve] == [0.1, 0.2, 0.5, 1.0] and n == sorted(n) and n[0] < n[-1]
    rows = {(r["kind"], r["n_trials"]): r for r in
            (json.loads(p.read_text()) for p in sorted((cross_run / "curve").glob("*.json")))}
    assert len(rows) == 8
    for e in curve:
        ft, sc = rows[("finetuned", e["n_trials"])], rows[("scratch", e["n_trials"])]
        # the pre-trained core already fits the new participant better than a fresh one before any step
        assert ft["training"]["step0_val_loss"] < 0.95 * sc["training"]["step0_val_loss"], (ft["training"],
                                                                                            sc["training"])
        d = np.array(ft["per_trial"]["decoded_pcc_tilt"]) - np.array(sc["per_trial"]["decoded_pcc_tilt"])
        gain = e["finetuned_minus_scratch"]["pcc_tilt"]
        assert gain["mean"] == pytest.approx(d.mean()) and gain["ci_low"] <= gain["mean"] <= gain["ci_high"]
        assert gain["n"] == e["n_test_trials"] == len(d) >= 2
        # both models and the no-neural baseline scored on the same test trials
        assert ft["per_trial"]["no_neural_pcc"] == sc["per_trial"]["no_neural_pcc"] or e["n_trials"] != n[0]
    # with every training trial, the fine-tuned model decodes above its trial-shuffled chance
    full = rows[("finetuned", n[-1])]["per_trial"]
    assert np.mean(full["decoded_pcc_tilt"]) > np.mean(full["chance_pcc_tilt"]) + 0.05
    report = (cross_run / "report.html").read_text()
    assert "learning_curve.png" in report and report.count("<tr>") == 5
    assert (cross_run / "learning_curve.png").stat().st_size > 10_000 and (cross_run / "DONE").exists()
    meta = json.loads((cross_run / "run.json").read_text())
    assert meta["kind"] == "cross" and len(meta["train_data"]) == 2


def test_the_pretrained_core_transfers_through_electrode_positions(cross_run, three):
    """Before any step of its own, the new participant's validation loss through the pre-trained core is lower
    with its electrodes routed by position than with the same routing shuffled across the core's inputs: what
    transfers is where each electrode sits, not only a generic speech spectrum."""
    import torch

    from neurovox import cross
    from neurovox.decoders.train import DecoderRunConfig
    from neurovox.runs import open_run

    cfg = open_run(cross_run).typed_config(DecoderRunConfig)
    paths, root = three
    reference = cross.load_participant(paths[0], cfg, root / "cache", name="train0")
    new = cross.load_participant(paths[2], cfg, root / "cache", name="new")
    routing = cross.input_routing(reference, new)
    state = torch.load(cross_run / "pretrained.pt", weights_only=False)["state_dict"]
    val = [cross._collate([d[i] for i in range(len(d))]) for d in [cross._batches(new, cfg.decoder, "val", 0)]]
    losses = []
    for w in (routing, routing[np.random.default_rng(0).permutation(len(routing))]):
        model = cross.SharedCoreDecoder(cross.build_core(cfg.decoder, reference.n_channels))
        model.core.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("core.")})
        model.add_participant("new", w, new.good)
        losses.append(cross.validation_loss(model, [new], val, cfg.decoder))
    assert losses[0] < 0.9 * losses[1], losses


def test_cross_participant_rerun_resumes_only_what_is_missing(cross_run, three, tmp_path):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(cross_run, out)
    for name in ("DONE", "cross.json", "report.html"):
        (out / name).unlink()
    redo = sorted((out / "curve").glob("scratch_*.json"))[1]
    kept = {p.name: p.stat().st_mtime_ns for p in (out / "curve").glob("*.json") if p != redo}
    before = json.loads(redo.read_text())
    redo.unlink()
    pre_mtime = (out / "pretrained.pt").stat().st_mtime_ns
    assert _train(three, out) == 0
    assert (out / "pretrained.pt").stat().st_mtime_ns == pre_mtime
    assert {p.name: p.stat().st_mtime_ns for p in (out / "curve").glob("*.json") if p != redo} == kept
    after = json.loads(redo.read_text())
    assert after["per_trial"] == before["per_trial"]              # the same seed retrains the same model
    assert (out / "DONE").exists() and (out / "report.html").exists()


def test_cross_participant_refuses_bad_input_before_writing(three, tmp_path, capsys):
    from neurovox.cli import main
    from neurovox.io import write_flinker_hdf5
    from neurovox.simulate import SimulateConfig, simulate_participant

    paths, root = three
    out = tmp_path / "x"
    seeg, _ = simulate_participant(SimulateConfig(n_trials=20, layout="seeg", encoding="linear"), 4, kind="high_gamma")
    seeg_path = str(write_flinker_hdf5(seeg, tmp_path / "seeg.h5"))
    cache = ["--cache-dir", str(root / "cache")]
    for data, test, extra, message in (
            ([paths[0], paths[1]], paths[2], ["--model", "resnet"], "recurrent core .* Use --model lstm"),
            ([paths[0], paths[2]], paths[2], [], "both a training recording .* and the new participant"),
            ([paths[0], paths[1]], None, [], "2 --data files given without --test-data"),
            ([paths[0], paths[1]], seeg_path, [], "shares no electrode position with .* common grid or in one coordinate")):
        argv = ["train", "decoder", *[a for d in data for a in ("--data", d)], "--out", str(out), *TINY, *cache, *extra]
        assert main(argv + (["--test-data", test] if test else [])) == 2
        err = capsys.readouterr().err
        assert re.search(message, err.replace("\n", " ")), err
        assert not out.exists()
