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
    from neurovox.report.tables import ceiling_of

    out = Path(args.out) if args.out else Path(args.run) / "eval"
    result = evaluate_run(args.run, args.data, out, args.seed, allow_other_data=args.allow_other_data,
                          speech_run=args.speech, n_boot=args.n_boot, n_chance_repeats=args.chance_repeats,
                          cache_dir=args.cache_dir)
    def num(x: float | None) -> str:
        return f"{x:.3f}" if x is not None else "-"

    # every metric with its chance level, the no-neural baseline (onset-aligned training mean) and the
    # paired gain over it with its 95 % CI
    print(f"{'metric':<18}{'decoded':>16}{'chance (shuffled)':>19}{'no-neural':>11}"
          f"  {'gain over no-neural [95% CI]':<42}{'ceiling':>7}")
    for name, stats in result["metrics"].items():
        label = result["metric_info"][name]["label"]
        ch = (result["chance"].get("shuffled") or {}).get(name, {}).get("mean")
        base = (result.get("baselines", {}).get("onset_mean") or {}).get(name, {}).get("mean")
        gain = (result.get("gain", {}).get("onset_mean") or {}).get(name) or {}
        ce = (ceiling_of(result) or {}).get(name, {}).get("mean")  # ASR: the reference audio's accuracy
        sem = stats.get("sem")
        dec = num(stats["mean"]) + (f" +- {sem:.3f}" if sem is not None and stats["mean"] is not None else "")
        g = (f"{gain['mean']:+.3f} [{gain['ci_low']:+.3f}, {gain['ci_high']:+.3f}]"
             + ("" if gain.get("above") else " (CI incl. 0)" if gain["ci_high"] >= 0 else " (worse)")
             if gain.get("mean") is not None else "-")
        print(f"{label:<18}{dec:>16}{num(ch):>19}{num(base):>11}  {g:<42}{num(ce):>7}")
    asr = result.get("asr") or {}
    if not asr.get("applies"):
        print(f"ASR word accuracy: {asr.get('note', 'not computed')}")
    else:
        print(f"ASR: closed vocabulary of {asr['vocabulary_size']} words, chance {asr['chance_uniform']:.3f}; "
              "ceiling column = the reference audio's accuracy")
    print(f"report: {out / 'report.html'}")
    return 0
