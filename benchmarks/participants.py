"""Decoders on simulated participants that no choice was made on (issue 16): does a result of the decoder
table hold beyond the one default participant?

    .venv/bin/python benchmarks/participants.py --out DIR [--seeds 22,23,...,29] [--models linear,lstm]
        [--directions noncausal,causal] [--encoding realistic] [--write-md]

The decoder table (benchmarks/decoder_table.py) scores every decoder on one participant (seed 0), the one
whose test trials the project has looked at most; the development participant (seed 1) chose the defaults.
This script repeats the table's stages, with the same commands and defaults, on participants simulated with
other seeds (each its own voice, electrode placement and encoding draws): `neurovox simulate --seed S`, then
for each model and direction `neurovox train decoder` and `neurovox evaluate` (resumable, one run
directory each under DIR/sS/). It reports, per participant and direction, the tilt-removed PCC of the linear
baseline, of each deep decoder and of the no-neural baseline, and the paired gains (deep minus linear, deep
minus no-neural, linear minus no-neural, bootstrap 95% CI over the 50 test trials), then how many
participants clear each bar and the mean gain over participants.

For a study on a user's own recordings, `neurovox sweep` is the tool (one report across participants, paired
comparisons across participants); this script is the decoder table's per-participant test, repeated.

Seeds used elsewhere (and so not "unseen" here): 0 (decoder table), 1 (development participant), 2-5
(cross-participant benchmark), 21 (the check that kept the validation-chosen branch weight).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from decoder_table import DIRECTIONS, MODELS, train_and_evaluate  # noqa: E402
from run import load_average, machine_description, write_generated_section  # noqa: E402

METRIC = "pcc_tilt"  # tilt-removed PCC: the bar


def run_participant(out: Path, seed: int, models: list[str], directions: list[str], encoding: str) -> dict[str, dict]:
    """Simulate participant `seed`, train and evaluate each model x direction; returns {run name: metrics.json}."""
    from neurovox.demo import _run_cli

    data_dir = out / f"s{seed}" / "data"
    _run_cli(["simulate", "--out", str(data_dir), "--kind", "high_gamma", "--encoding", encoding, "--seed", str(seed),
              "--set", f"simulate.participant_id=sim{seed:02d}"], data_dir / "config.yaml")
    data = str(sorted(data_dir.glob("*.h5"))[0])
    results = {}
    for model in models:
        for direction in directions:
            name, _, eval_dir = train_and_evaluate(out / f"s{seed}", data, model, direction)
            results[name] = json.loads((eval_dir / "metrics.json").read_text())
    return results


def _gain(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    from neurovox.evaluate.metrics import paired_gain

    return paired_gain(a, b, generator=np.random.default_rng(0))


def _chance(metrics: dict) -> float:
    """The decoder's chance level: the same model fed trial-shuffled neural windows (`neurovox evaluate`)."""
    return float(metrics["chance"]["shuffled"][METRIC]["mean"])


def _cell(g: dict[str, float]) -> str:
    mark = " ✓" if g["ci_low"] > 0 else ""
    return f"{g['mean']:+.3f} [{g['ci_low']:+.3f}, {g['ci_high']:+.3f}]{mark}"


def tables(per_seed: dict[int, dict[str, dict]], models: list[str], directions: list[str]) -> str:
    """One row per participant x direction x deep model, then a summary over participants."""
    rows = ["| participant | direction | deep model | linear (chance) | deep (chance) | no-neural | deep - linear | "
            "deep - no-neural | linear - no-neural |", "|---|---|---|---|---|---|---|---|---|"]
    summary: dict[tuple[str, str], dict[str, list]] = {}
    for seed, results in per_seed.items():
        for direction in directions:
            suffix = DIRECTIONS[direction][0]
            linear = results["linear" + suffix]
            lin = np.asarray(linear["per_trial"]["decoded"][METRIC])
            none = np.asarray(linear["per_trial"]["baseline_onset_mean"][METRIC])
            linear_vs_none = _gain(lin, none)
            for model in [m for m in models if m != "linear"]:
                res = results[model + suffix]
                assert [t["trial"] for t in res["trials"]] == [t["trial"] for t in linear["trials"]], (seed, model)
                deep = np.asarray(res["per_trial"]["decoded"][METRIC])
                gains = {"deep - linear": _gain(deep, lin), "deep - no-neural": _gain(deep, none),
                         "linear - no-neural": linear_vs_none}
                rows.append(f"| seed {seed} | {direction} | {model} | {lin.mean():.3f} ({_chance(linear):.3f}) | "
                            f"{deep.mean():.3f} ({_chance(res):.3f}) | {none.mean():.3f} | "
                            + " | ".join(_cell(g) for g in gains.values()) + " |")
                s = summary.setdefault((direction, model), {k: [] for k in gains})
                for k, g in gains.items():
                    s[k].append(g)
    n = len(per_seed)
    lines = ["| direction | deep model | " + " | ".join(f"{k}: CI above 0 / mean over participants [min, max]"
                                                       for k in ("deep - linear", "deep - no-neural", "linear - no-neural"))
             + " |", "|---|---|---|---|---|"]
    for (direction, model), s in summary.items():
        cells = []
        for gs in s.values():
            means = [g["mean"] for g in gs]
            cells.append(f"{sum(g['ci_low'] > 0 for g in gs)}/{n}, {np.mean(means):+.3f} [{min(means):+.3f}, {max(means):+.3f}]")
        lines.append(f"| {direction} | {model} | " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n\nOver participants:\n\n" + "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path, help="working directory (resumable)")
    ap.add_argument("--seeds", default="22,23,24,25,26,27,28,29", help="participant seeds (default 22-29)")
    ap.add_argument("--models", default="linear,lstm", help=f"comma-separated subset of {','.join(MODELS)}; the "
                                                            "linear baseline always runs (default linear,lstm)")
    ap.add_argument("--directions", default="noncausal,causal", help="comma-separated subset of "
                                                                     "noncausal,causal,anticausal (default noncausal,causal)")
    ap.add_argument("--encoding", choices=("realistic", "linear"), default="realistic")
    ap.add_argument("--write-md", action="store_true", help="replace the generated section of BENCHMARKS.md")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    models = ["linear"] + [m for m in MODELS if m != "linear" and m in args.models.split(",")]
    directions = [d for d in DIRECTIONS if d in args.directions.split(",")]
    start = datetime.now(timezone.utc).isoformat(timespec="seconds")
    load_start, t0 = load_average(), time.perf_counter()
    per_seed = {seed: run_participant(args.out, seed, models, directions, args.encoding) for seed in seeds}
    table = tables(per_seed, models, directions)
    print("\n" + table)
    if args.write_md:
        name = f"participants-{args.encoding}"
        cmd = (f"`.venv/bin/python benchmarks/participants.py --out DIR --seeds {args.seeds} --models {args.models} "
               f"--directions {args.directions} --encoding {args.encoding} --write-md`")
        body = (f"## Generated: decoders on participants no choice was made on, {args.encoding} encoding\n\n"
                f"Command: {cmd}  \nMachine: {machine_description()}  \n"
                f"Date: {start}; load average at start {load_start}, at end {load_average()}; "
                f"{(time.perf_counter() - t0) / 60:.0f} min in all (stages resumed from an earlier run count 0).\n\n"
                f"Each participant is `neurovox simulate --seed S` ({args.encoding} encoding, 300 words, 8x8, SNR 0 dB; "
                f"its own voice, placement and encoding draws), every decoder at its default configuration, scored "
                f"like the decoder table on its 50 held-out test trials: tilt-removed PCC (per-trial mean; chance = the "
                f"same model fed trial-shuffled neural windows; no-neural = the onset-aligned mean of the training "
                f"windows), gains with a paired bootstrap 95% CI over those trials (✓: CI above 0). No default, hyperparameter or "
                f"branch weight was chosen on these participants.\n\n{table}\n")
        write_generated_section(name, "participants.py", body)
        print("BENCHMARKS.md updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
