"""`neurovox evaluate --run RUN --data FILE [--out DIR]`: metrics with chance and ceiling, WAVs, report."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    from neurovox.cli import command_parser

    p = command_parser(
        subparsers, "evaluate", "score a trained decoding run on its held-out trials (metrics.json + report.html)",
        "Decode the test trials of FILE with a finished decoder/dps run and write metrics.json (PCC, tilt-removed "
        "PCC, STOI, ESTOI, STOI+, MCD with bootstrap CIs, chance levels, the no-neural baselines with each "
        "decoder's gain over them, and the speech-autoencoder ceiling), per-trial WAVs and a self-contained "
        "report.html.", run)
    p.add_argument("--run", required=True, metavar="RUN", help="finished run directory (kind decoder or dps)")
    p.add_argument("--data", required=True, metavar="FILE", help="the recording the run was trained on")
    p.add_argument("--out", metavar="DIR", default=None, help="output folder (default: RUN/eval)")
    p.add_argument("--speech", metavar="RUN", default=None,
                   help="speech run for the ceiling (default: the one recorded in the decoder run)")
    p.add_argument("--allow-other-data", action="store_true",
                   help="evaluate on a file other than the training file (recorded in metrics.json)")
    p.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples for the CIs (default 2000)")
    p.add_argument("--chance-repeats", type=int, default=1,
                   help="draws of each chance control, pooled (default 1)")
    p.add_argument("--cache-dir", default=None, metavar="DIR", help="feature cache (default: neurovox's cache)")
    p.add_argument("--seed", type=int, default=0, help="random seed (bootstrap, chance draws, sampling)")
    return p


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from neurovox.evaluate.evaluate import evaluate_run

    out = Path(args.out) if args.out else Path(args.run) / "eval"
    result = evaluate_run(args.run, args.data, out, args.seed, allow_other_data=args.allow_other_data,
                          speech_run=args.speech, n_boot=args.n_boot, n_chance_repeats=args.chance_repeats,
                          cache_dir=args.cache_dir)
    print(f"{'metric':<18}{'decoded':>16}{'chance (shuffled)':>20}{'ceiling':>10}")
    for name, stats in result["metrics"].items():
        label = result["metric_info"][name]["label"]
        ch = (result["chance"].get("shuffled") or {}).get(name, {}).get("mean")
        ce = (result["ceiling"] or {}).get(name, {}).get("mean")
        sem = stats.get("sem")
        dec = f"{stats['mean']:.3f}" + (f" +- {sem:.3f}" if sem is not None else "") if stats["mean"] is not None else "-"
        print(f"{label:<18}{dec:>16}{(f'{ch:.3f}' if ch is not None else '-'):>20}{(f'{ce:.3f}' if ce is not None else '-'):>10}")
    print(f"report: {out / 'report.html'}")
    return 0
