"""The end-to-end demo behind `neurovox demo`, stage by stage.

    simulate -> train decoders (linear, LSTM, causal LSTM) -> evaluate each -> comparison report

The deep decoder shown is the LSTM, causal and not: on the default participant it is the best deep decoder
and the only one ahead of the tuned linear baseline, and it trains in 1.5-3.5 minutes on 2 cores; the
reference paper's ResNet3D and Swin3D trail the linear baseline there (BENCHMARKS.md, decoder tables) and
are one `--model` away (README).

The deep decoders output the mel spectrogram (the default target), so the demo trains no speech model;
the formant-parameter path of the reference paper is `neurovox train speech` + `neurovox train decoder
--target formant --speech RUN` (README).

Every stage is the ordinary CLI command a user would type (printed before it runs), writing its
own run directory under `out`, so the demo doubles as a worked example. A rerun skips stages that
finished (their DONE file exists) and resumes unfinished ones from their checkpoints.
"""

from __future__ import annotations

import json
import shlex
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from neurovox.errors import NeurovoxError, RunError
from neurovox.report.tables import comparison_entry, text_table


@dataclass(frozen=True)
class DemoPlan:
    """What the demo runs; `quick` trades accuracy for a first look in a few minutes."""

    n_trials: int                    # simulated words (5 tasks)
    snr_db: float                    # per-channel high-gamma SNR of the simulated participant, dB
    encoding: str                    # simulator encoding model: "realistic" (default) or "linear"
    decoders: tuple[tuple[str, str, bool], ...]  # (name, model, causal)
    decoder_args: tuple[str, ...]    # extra `train decoder` arguments for the deep models
    quick: bool
    expected_min: float              # expected wall time on 2 CPU cores, minutes


def make_plan(quick: bool, encoding: str = "realistic") -> DemoPlan:
    # Budgets are epochs, never wall clock: a busy machine runs the same steps, only slower, and the
    # learning rate decays over exactly the steps that run (measured costs: BENCHMARKS.md).
    decoders = (("linear", "linear", False), ("lstm", "lstm", False), ("lstm_causal", "lstm", True))
    if quick:
        return DemoPlan(n_trials=100, snr_db=0.0, encoding=encoding, decoders=decoders, quick=True, expected_min=3,
                        decoder_args=("--quick",))
    # The LSTMs at their full default budget (30 epochs, early stopping; 3.4 and 1.5 min on 2 idle cores, 8.2 min in
    # all: BENCHMARKS.md, "End to end").
    return DemoPlan(n_trials=300, snr_db=0.0, encoding=encoding, decoders=decoders, quick=False, expected_min=8,
                    decoder_args=())


def _run_cli(argv: list[str], done_marker: Path | None = None) -> float:
    """Run one `neurovox` command in-process unless `done_marker` exists; returns seconds taken."""
    from neurovox.cli import main

    print(f"\n$ neurovox {shlex.join(argv)}", flush=True)
    if done_marker is not None and done_marker.exists():
        print("  (already done: skipped)")
        return 0.0
    t0 = time.perf_counter()
    code = main(argv)
    if code != 0:
        raise NeurovoxError(f"demo stage `neurovox {shlex.join(argv)}` failed with exit code {code}; "
                            "see the message above. Rerun `neurovox demo` to resume from this stage.")
    return time.perf_counter() - t0


def run_demo(out: Path, *, quick: bool = False, seed: int = 0, overwrite: bool = False,
             encoding: str = "realistic") -> Path:
    """Run the whole pipeline into `out` and return the path of the comparison report."""
    from neurovox.report import write_comparison_report

    plan = make_plan(quick, encoding)
    out = Path(out)
    if overwrite and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    n_stages = 2 + 2 * len(plan.decoders)
    print(f"neurovox demo: {n_stages} stages into {out.resolve()} "
          f"({'--quick, ' if quick else ''}about {plan.expected_min:g} min on 2 CPU cores; "
          "interrupt and rerun to resume)")
    t_start = time.perf_counter()
    timings: dict[str, float] = {}

    data_dir = out / "data"
    sim_args = ["simulate", "--out", str(data_dir), "--kind", "high_gamma", "--n-trials", str(plan.n_trials),
                "--snr-db", str(plan.snr_db), "--encoding", plan.encoding, "--seed", str(seed)]
    timings["simulate"] = _run_cli(sim_args, data_dir / "config.yaml")
    data_files = sorted(data_dir.glob("*.h5"))
    if len(data_files) != 1:
        raise RunError(f"expected one simulated .h5 file in {data_dir}, found {len(data_files)}; rerun with --overwrite.")
    data = str(data_files[0])

    runs = out / "runs"

    entries = []
    for name, model, causal in plan.decoders:
        run_dir = runs / name
        argv = ["train", "decoder", "--data", data, "--model", model,
                "--out", str(run_dir), "--seed", str(seed)] + (["--causal"] if causal else [])
        if model != "linear":
            argv += list(plan.decoder_args)
        timings[f"train {name}"] = _run_cli(argv, run_dir / "DONE")
        eval_dir = out / "eval" / name
        timings[f"evaluate {name}"] = _run_cli(
            ["evaluate", "--run", str(run_dir), "--data", data, "--out", str(eval_dir),
             "--seed", str(seed)], eval_dir / "metrics.json")
        result = json.loads((eval_dir / "metrics.json").read_text())
        entries.append(comparison_entry(name + (" (causal)" if causal else ""), result, eval_dir / "report.html",
                                        f"{model}, {'strictly causal' if causal else 'non-causal'}"))

    report_dir = out / "report"
    write_comparison_report(
        entries, report_dir, title="neurovox demo: decoding a simulated participant",
        notes=(f"Simulated participant ({plan.encoding} encoding model, docs/simulator.md): 8x8 ECoG grid, "
               f"{plan.n_trials} words in 5 tasks, high-gamma SNR "
               f"{plan.snr_db:g} dB, seed {seed}. Test set: the last 10 trials of each task. Chance: the same "
               "trained model fed trial-shuffled neural windows. No-neural baseline: the onset-aligned mean of the "
               "training windows (handed the trial timing, never the brain); a decoder has decoded speech content "
               "from the brain only where its gain over it has a CI above 0. The deep decoders output the mel "
               "spectrogram (Griffin-Lim vocoder), like the linear baseline."
               + (" Quick settings: few epochs." if quick else "")))
    total = time.perf_counter() - t_start
    print("\nStage times: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()) + f"; total {total / 60:.1f} min")
    print("\n" + text_table(entries))
    return report_dir / "report.html"
