"""`neurovox sweep` (neurovox.sweep, neurovox.sweep.report): a grid of participants x decoders x folds as
submitit jobs; a killed job is reported and resumed by the rerun; a finished sweep reruns for nothing; the
aggregated report's numbers follow from the cells'."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from neurovox.errors import ConfigError

TINY = ["prepare.praat=false", "decoder.max_steps=40", "decoder.rnn_hidden=16", "decoder.rnn_layers=1",
        "decoder.n_target_frames=64", "decoder.n_lead_frames=8"]


def _grid(folder: Path, recordings: list[str], **extra) -> Path:
    import yaml

    grid = {"recordings": recordings, "models": ["lstm", "linear"], "causal": [False], "splits": ["kfold"],
            "n_folds": 5, "folds": [0, 1], "quick": True, "overrides": TINY, **extra}
    path = folder / "grid.yaml"
    path.write_text(yaml.safe_dump(grid))
    return path


@pytest.fixture(scope="module")
def two_participants(tmp_path_factory):
    from neurovox.io import write_flinker_hdf5
    from neurovox.simulate import SimulateConfig, simulate_participant

    root = tmp_path_factory.mktemp("sweep")
    for i in (1, 2):
        rec, _ = simulate_participant(SimulateConfig(n_trials=60, encoding="linear", participant_id=f"p{i}"), i,
                                      kind="high_gamma")
        write_flinker_hdf5(rec, root / f"p{i}.h5")
    return root


def test_grid_expands_to_cells_and_refuses_what_it_cannot_run(two_participants, tmp_path):
    from neurovox.sweep import expand, load_grid, make_executor, run_sweep

    path = _grid(two_participants, ["p1.h5", "p2.h5"], causal=[False, True])
    grid = load_grid(path, ["folds=[0, 1, 2]"])
    cells = expand(grid)
    assert len(cells) == 2 * 2 * 2 * 3 and len({c.key for c in cells}) == len(cells)
    assert {c.participant for c in cells} == {"p1", "p2"} and "p2/lstm-causal/kfold-fold2" in {c.key for c in cells}
    assert all(Path(c.recording).is_absolute() for c in cells)           # read against the grid file's folder
    for override, message in ((["recordings=[nope.h5]"], "not found: .*nope.h5"), (["recordings=[]"], "no recordings"),
                              (["models=[lstn]"], "lstn"), (["fold=[0]"], "Unknown config key 'fold'")):
        with pytest.raises(ConfigError, match=message):
            load_grid(path, override)
    with pytest.raises(ConfigError, match="resources.*need to be prefixed"):
        make_executor("local", tmp_path / "logs", {"gpus": 1})
    with pytest.raises(ConfigError, match="executor slurm.*--executor local"):
        make_executor("slurm", tmp_path / "logs", {})
    # a rerun whose cells would hold another experiment is refused before any job starts
    out = tmp_path / "out"
    out.mkdir()
    (out / "grid.json").write_text(json.dumps({"n_folds": 5, "quick": False, "seed": 0, "overrides": TINY,
                                               "speech_overrides": []}))
    with pytest.raises(ConfigError, match="quick: False -> True"):
        run_sweep(path, out, executor="debug")
    assert sorted(p.name for p in out.iterdir()) == ["grid.json"]


def test_comparisons_are_paired_over_participants():
    from scipy.stats import wilcoxon

    from neurovox.sweep.report import comparisons

    def entry(values):
        return {"pcc": {"per_participant": dict(zip("abcdefg", values))}}

    a, b, c = [0.5, 0.6, 0.55, 0.7, 0.65, 0.62, 0.58], [0.45, 0.5, 0.56, 0.6, 0.6, 0.5, 0.5], [0.4] * 7
    rows = comparisons({("kfold", "lstm"): entry(a), ("kfold", "linear"): entry(b), ("kfold", "lstm-causal"): entry(c),
                        ("kfold", "linear-causal"): entry(c[:3])})
    pairs = {(r["a"], r["b"]) for r in rows}
    # models of one direction, and causal vs non-causal of one model; never lstm vs linear-causal
    assert pairs == {("linear", "lstm"), ("linear", "linear-causal"), ("linear-causal", "lstm-causal"),
                     ("lstm", "lstm-causal")}
    r = next(r for r in rows if (r["a"], r["b"]) == ("linear", "lstm"))
    d = np.array(b) - np.array(a)
    assert r["mean_diff"] == pytest.approx(d.mean()) and r["se"] == pytest.approx(d.std(ddof=1) / np.sqrt(7))
    assert r["p_wilcoxon"] == pytest.approx(wilcoxon(d).pvalue) and r["a_better_in"] == int((d > 0).sum())
    assert next(r for r in rows if r["a"] == "linear-causal")["n_participants"] == 3   # only those both finished


@pytest.mark.slow
def test_sweep_survives_a_killed_job_resumes_it_and_reruns_for_nothing(two_participants, tmp_path):
    """2 participants x 2 models x 2 folds of --quick runs on the local executor, 2 at a time."""
    grid = _grid(two_participants, [str(two_participants / "p1.h5"), str(two_participants / "p2.h5")])
    out = tmp_path / "sweep"
    argv = [sys.executable, "-m", "neurovox.cli", "sweep", "--grid", str(grid), "--out", str(out), "--max-parallel", "2"]
    env = {**os.environ, "NEUROVOX_CACHE": str(tmp_path / "cache")}
    driver = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    victim = out / "cells" / "p1" / "lstm" / "kfold-fold0"
    deadline = time.monotonic() + 300
    while not (victim / "run" / "run.json").exists():  # its decoder run has started
        assert time.monotonic() < deadline and driver.poll() is None, "the first cell never started training"
        time.sleep(0.2)
    os.kill(json.loads((victim / "worker.json").read_text())["pid"], signal.SIGKILL)
    created = json.loads((victim / "run" / "run.json").read_text())["created"]
    log, _ = driver.communicate(timeout=900)
    assert driver.returncode == 1, log[-3000:]
    state = json.loads((out / "sweep.json").read_text())["cells"]
    killed = state["p1/lstm/kfold-fold0"]
    assert killed["state"] == "failed" and "ended without a result" in killed["error"] and Path(killed["log"]).exists()
    assert sorted(k for k, v in state.items() if v["state"] == "done") == sorted(set(state) - {"p1/lstm/kfold-fold0"})
    assert "FAILED p1/lstm/kfold-fold0" in log and not (victim / "DONE").exists()

    rerun = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert "7 already done, 1 to run" in rerun.stdout
    assert json.loads((victim / "run" / "run.json").read_text())["created"] == created  # resumed, not restarted
    state = json.loads((out / "sweep.json").read_text())["cells"]
    assert len(state) == 8 and all(v["state"] == "done" for v in state.values())

    # the report: per participant from the cells' DONE files, across participants their mean
    rows = list(csv.DictReader((out / "summary.csv").open()))
    for decoder in ("lstm", "linear"):
        per = [json.loads((out / "cells" / p / decoder / f"kfold-fold{k}" / "DONE").read_text())["metrics"]["pcc"]["mean"]
               for p in ("p1", "p2") for k in (0, 1)]
        row = {r["participant"]: r for r in rows if r["decoder"] == decoder and r["metric"] == "pcc"}
        assert float(row["p1"]["mean"]) == pytest.approx(np.mean(per[:2]), abs=1e-5)
        assert float(row["all"]["mean"]) == pytest.approx(np.mean([np.mean(per[:2]), np.mean(per[2:])]), abs=1e-5)
        assert row["all"]["n"] == "2" and float(row["all"]["chance"]) < float(row["all"]["mean"]) + 1
    linear = {r["participant"]: r for r in rows if r["decoder"] == "linear" and r["metric"] == "pcc_tilt"}
    assert float(linear["all"]["mean"]) > float(linear["all"]["chance"]) + 0.1     # the cells decoded for real
    page = (out / "report.html").read_text()
    assert "Paired comparisons across participants" in page and "sweep.png" in page and "not finished" not in page
    assert (out / "sweep.png").stat().st_size > 10_000

    n_logs = len(list((out / "logs").iterdir()))
    t0 = time.monotonic()
    again = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    seconds = time.monotonic() - t0
    assert again.returncode == 0 and "8 already done, 0 to run" in again.stdout
    assert len(list((out / "logs").iterdir())) == n_logs                          # no job was submitted
    assert seconds < 60, seconds                                                   # ~10 s idle: imports and report


@pytest.mark.slow
def test_formant_cells_share_one_speech_model_per_fold_trained_without_its_test_trials(two_participants, tmp_path):
    """Formant-target decoders of one participant and fold decode through one speech model, trained first on that
    fold's training trials only (debug executor: the jobs run in this process)."""
    from neurovox.sweep import run_sweep

    speech = ["prepare.praat=false", "speech.max_steps=12", "speech.batch_size=2", "speech.n_frames=64",
              "speech.checkpoint_every=4", "speech.n_examples=0", "speech.warmup_steps=2", "encoder.hidden=16",
              "encoder.n_blocks=1"]
    grid = _grid(two_participants, ["p1.h5"], models=["lstm", "gru"], folds=[1], speech_overrides=speech,
                 overrides=TINY + ["decoder.target=formant", "decoder.ref_only_steps=8", "decoder.spec_ffts=[512]"])
    out = tmp_path / "sweep"
    result = run_sweep(grid, out, executor="debug", progress=False)
    assert result["summary"]["n_done"] == 2, result["cells"]
    speech_run = (out / "speech" / "p1" / "kfold-fold1").resolve()
    assert (speech_run / "DONE").exists() and len(list((out / "speech" / "p1").iterdir())) == 2  # + .kfold-fold1
    for decoder in ("lstm", "gru"):
        meta = json.loads((out / "cells" / "p1" / decoder / "kfold-fold1" / "run" / "run.json").read_text())
        assert Path(meta["speech_run"]).resolve() == speech_run
    trained = json.loads((speech_run / "run.json").read_text())["training_data"]
    metrics = json.loads((out / "cells" / "p1" / "lstm" / "kfold-fold1" / "eval" / "metrics.json").read_text())
    test = {t["trial"] for t in metrics["trials"]}
    assert test and not test & set(trained[0]["trained_trials"]), "the speech model heard the fold's test trials"
