"""Scale (issue 8 item 6): how training cost and memory grow with channels and with recording length.

- channels: one optimisation step of the decoder alone (forward + mean-square loss + backward +
  AdamW, default model sizes, 16 + 128 frames) for 64 (8x8), 128 (8x16) and 256 (16x16) channels,
  ResNet3D and LSTM; s per step, windows/s, CPU s per step and peak memory (peak RSS minus the RSS
  before the steps, in a fresh process per case, see `_worker.py`), all on 1 torch thread. Ratios
  use CPU time, which a busy machine disturbs far less than wall time. The synthesizer's share of a spectral-phase
  step does not depend on the channel count (see `bench_decoders`, "with synth" rows).
- recording length: simulated raw recordings (8x8 grid at 1024 Hz) of 1x, 2x and 4x the base
  number of words: `prepare` time (high gamma + speech features incl. Praat + trial frames, no
  cache) and its peak memory, high-gamma extraction alone, and one training epoch of the decoder
  alone (the `--quick` ResNet3D, batch 8, data loading included) over the 5-fold split's training
  windows.
  Ratios against 1x (CPU time) are reported in the same run.

small: batch 2, 3 timed steps; lengths 20 / 40 / 80 words (about 45 / 80 / 160 s of session).
full: batch 16, 5 timed steps; lengths 150 / 300 / 600 words (300 is the default participant, ~10 min).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _worker import run_case  # noqa: E402

GRIDS = {64: (8, 8), 128: (8, 16), 256: (16, 16)}
SIZES = {"small": {"batch": 2, "repeats": 3, "n_trials": (20, 40, 80)},
         "full": {"batch": 16, "repeats": 5, "n_trials": (150, 300, 600)}}
QUICK_RESNET = {"widths": [8, 16, 32]}  # the `--quick` ResNet3D (bench_training trains it)
EPOCH_BATCH = 8                         # the `--quick` batch size
# One torch thread: growth ratios are the point here, and on a shared machine a second thread's
# spin-waiting inflates CPU time unpredictably (bench_decoders has the 2-thread throughput).
THREADS = 1


def _row(case: str, metric: str, value: float, unit: str, note: str = "") -> dict:
    return {"benchmark": "scale", "case": case, "metric": metric, "value": float(value), "unit": unit, "note": note}


def _channel_rows(s: dict) -> list[dict]:
    rows = []
    for model in ("resnet", "lstm"):
        base_cpu = None
        for n_ch, grid in GRIDS.items():
            r = run_case({"model": model, "causal": False, "n_channels": n_ch, "grid": list(grid), "batch": s["batch"],
                          "repeats": s["repeats"], "synth": False, "threads": THREADS})
            step, cpu = r["decoder_only_step_s"], r["decoder_only_cpu_s"]
            base_cpu = base_cpu or cpu
            case = f"{model}, {n_ch} ch ({grid[0]}x{grid[1]})"
            note = (f"decoder only, batch {s['batch']}, 16+128 frames, {r['n_params']} params, "
                    f"{r['threads']} torch thread(s), median of {s['repeats']}")
            rows += [_row(case, "s per step", step, "s", note),
                     _row(case, "train windows/s", s["batch"] / step, "windows/s", note),
                     _row(case, "CPU s per step", cpu, "s", "process CPU time (1 torch thread)"),
                     _row(case, "CPU time ratio vs 64 ch", cpu / base_cpu, "x", "same run; steadier than wall time"),
                     _row(case, "train peak memory", r["decoder_only_growth_mib"], "MiB",
                          "peak RSS - RSS before the steps, fresh process")]
    return rows


def _length_rows(s: dict) -> list[dict]:
    rows = []
    base = None
    for k, n_trials in enumerate(s["n_trials"]):
        r = run_case({"kind": "length", "n_trials": n_trials, "batch": EPOCH_BATCH, "model": "resnet",
                      "model_kwargs": QUICK_RESNET, "praat": True, "threads": THREADS})
        base = base or r
        mult = 2 ** k
        case = f"{mult}x: {n_trials} words, {r['duration_s']:.0f} s raw, 64 ch @ 1024 Hz"
        rows += [
            _row(case, "prepare time", r["prepare_s"], "s", "high gamma + speech features (Praat) + trials, no cache"),
            _row(case, "prepare CPU time ratio vs 1x", r["prepare_cpu_s"] / base["prepare_cpu_s"], "x",
                 f"same run; {r['prepare_cpu_s']:.1f} s CPU"),
            _row(case, "prepare peak memory", r["prepare_growth_mib"], "MiB",
                 f"peak RSS growth; raw input {r['input_mib']:.0f} MiB float32"),
            _row(case, "high gamma time", r["high_gamma_s"], "s", "offline, part of prepare"),
            _row(case, "training epoch time", r["epoch_s"], "s",
                 f"quick resnet, decoder only, batch {EPOCH_BATCH}, {r['n_train_windows']} training windows "
                 "(5-fold split)"),
            _row(case, "training epoch ms per window", 1e3 * r["epoch_s"] / max(r["n_train_windows"], 1), "ms",
                 "data loading included"),
            _row(case, "training epoch CPU ms per window", 1e3 * r["epoch_cpu_s"] / max(r["n_train_windows"], 1), "ms",
                 "process CPU time (1 torch thread)"),
            _row(case, "simulate time", r["simulate_s"], "s", "raw + audio"),
        ]
    return rows


def run(size: str = "small") -> list[dict]:
    s = SIZES[size]
    return _channel_rows(s) + _length_rows(s)


if __name__ == "__main__":
    for r in run(sys.argv[1] if len(sys.argv) > 1 else "small"):
        print(r)
