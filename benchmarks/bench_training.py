"""Time to reach a fixed validation PCC (issue 8 item 3), through the CLI as a user would run it.

Simulates a participant (`neurovox simulate`), then trains the linear baseline, ResNet3D and LSTM (mel
target, the default) with `--quick` and `decoder.max_epochs` = E (a step budget: the cosine learning-rate
decay spans those E epochs, and a loaded machine runs the same steps, only slower), each in its own
`neurovox train decoder` process. The validation PCC per epoch is read from the run's TensorBoard log
(`val_pcc`, Lightning, mean per-window PCC of the mel dB over the speech frames of the validation
trials); the figure is the wall time from launching the command (imports, cached features and the cost
printout included) to the first epoch whose validation PCC reached the threshold, and the optimiser steps
taken by then. The linear baseline is fitted in one go: its time is the whole command's, counted only
when its validation PCC reaches the threshold.

small: 100-word participant (45 training, 5 validation trials), threshold 0.5, E = 10 epochs (60
steps). full: the default participant (300 words, 225 training, 25 validation trials), threshold 0.6,
E = 20 epochs (580 steps).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = {"small": {"n_trials": 100, "threshold": 0.5, "max_epochs": 10},
         "full": {"n_trials": 300, "threshold": 0.6, "max_epochs": 20}}
QUICK_BATCH = 16  # the default batch size (`--quick` keeps it)


def _row(case: str, metric: str, value: float, unit: str, note: str = "") -> dict:
    return {"benchmark": "training", "case": case, "metric": metric, "value": float(value), "unit": unit, "note": note}


def _cli(args: list[str], env: dict, log: Path) -> float:
    """Run `neurovox ARGS` in a fresh process; returns its wall time (s)."""
    exe = Path(sys.executable).parent / "neurovox"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-c", "import sys; from neurovox.cli import main; sys.exit(main())"]
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.run(cmd + args, stdout=fh, stderr=subprocess.STDOUT, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"`neurovox {' '.join(args)}` failed (exit {proc.returncode}); see {log}")
    return time.perf_counter() - t0


def _steps_per_epoch(data: str, cache_dir: Path) -> int:
    """Training batches per epoch of a quick decoder run (flinker split, as the CLI's defaults)."""
    from neurovox.io import read_recording
    from neurovox.preprocess import Normalizer, PrepareConfig, WindowDataset, make_split, prepare

    prepared = prepare(read_recording(data), PrepareConfig(), cache_dir)
    split = make_split(prepared, "flinker")
    norm = Normalizer().fit(prepared.neural, split.train_frame_mask)
    return -(-len(WindowDataset(prepared, split, norm, "train")) // QUICK_BATCH)


def _val_pcc_curve(run_dir: Path) -> list[tuple[int, float, float]]:
    """(global step, wall time, val_pcc) per validation, from the run's TensorBoard events."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    files = sorted(glob.glob(str(run_dir / "logs" / "*")))
    if not files:
        return []
    acc = EventAccumulator(files[-1])
    acc.Reload()
    if "val_pcc" not in acc.Tags().get("scalars", []):
        return []
    return [(e.step, e.wall_time, e.value) for e in acc.Scalars("val_pcc")]


def run(size: str = "small") -> list[dict]:
    s = SIZES[size]
    thr = s["threshold"]
    root = Path(tempfile.mkdtemp(prefix="bench_training_"))
    env = {**os.environ, "NEUROVOX_CACHE": str(root / "cache")}
    rows = []
    t = _cli(["simulate", "--out", str(root / "sim"), "--kind", "high_gamma", "--n-trials", str(s["n_trials"]),
              "--seed", "0"], env, root / "simulate.log")
    data = sorted(glob.glob(str(root / "sim" / "*.h5")))[0]
    rows.append(_row(f"participant: {s['n_trials']} words, 8x8", "simulate (CLI)", t, "s"))
    n_steps = _steps_per_epoch(data, root / "cache")
    for model in ("linear", "resnet", "lstm"):
        out = root / model
        args = ["train", "decoder", "--data", data, "--model", model, "--out", str(out), "--seed", "0", "--quick"]
        if model != "linear":
            args += ["--set", f"decoder.max_epochs={s['max_epochs']}"]
        launch = time.time()
        total = _cli(args, env, root / f"{model}.log")
        done = json.loads((out / "DONE").read_text())
        case = f"{model} --quick" + ("" if model == "linear" else f", {s['max_epochs']} epochs")
        if model == "linear":
            pcc = float(done.get("val_pcc") or float("nan"))
            rows.append(_row(case, f"time to val PCC >= {thr:g}", total if pcc >= thr else float("nan"), "s",
                             f"whole command (closed-form fit); val PCC {pcc:.3f}"))
            rows.append(_row(case, "final val PCC", pcc, "r", f"command took {total:.0f} s"))
            continue
        curve = _val_pcc_curve(out)
        hit = next(((st, wt) for st, wt, v in curve if v >= thr), None)
        note = f"{len(curve)} validations, {n_steps} steps/epoch; from launch"
        rows.append(_row(case, f"time to val PCC >= {thr:g}", (hit[1] - launch) if hit else float("nan"), "s",
                         note if hit else f"not reached in the budget; {note}"))
        rows.append(_row(case, f"steps to val PCC >= {thr:g}", (hit[0] + 1) if hit else float("nan"), "steps",
                         f"batch {QUICK_BATCH}"))
        if curve:
            best = max(curve, key=lambda c: c[2])
            rows.append(_row(case, "best val PCC in the budget", best[2], "r",
                             f"at {best[1] - launch:.0f} s, step {best[0] + 1}; command took {total:.0f} s"))
    shutil.rmtree(root, ignore_errors=True)  # kept only when a command failed (its log is named in the error)
    return rows


if __name__ == "__main__":
    for r in run(sys.argv[1] if len(sys.argv) > 1 else "small"):
        print(r)
