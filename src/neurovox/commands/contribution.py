"""`neurovox contribution --run RUN --data FILE --out DIR`: which electrodes carry the decoded speech."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    from neurovox.cli import command_parser

    p = command_parser(
        subparsers, "contribution", "occlusion analysis: each electrode's contribution to a decoder's test scores",
        "Occlude each electrode in turn (its normalised input set to the training mean, 0) in every test window of "
        "FILE, decode again, and report the drop of the per-trial PCC and tilt-removed PCC with a bootstrap 95% CI "
        "over trials: DIR/contributions.csv, a map on the grid (or at the contacts' 3-D positions), "
        "DIR/contribution.json and DIR/report.html. Bad contacts, masked by the decoder, contribute exactly 0.", run)
    p.add_argument("--run", required=True, metavar="RUN", help="finished decoder run (`neurovox train decoder`)")
    p.add_argument("--data", required=True, metavar="FILE", help="the recording the run was trained on")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (replaced atomically)")
    p.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples for the CIs (default 2000)")
    p.add_argument("--cache-dir", default=None, metavar="DIR", help="feature cache (default: neurovox's cache)")
    p.add_argument("--seed", type=int, default=0, help="random seed (bootstrap)")
    return p


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from neurovox.evaluate.contribution import contribution_run

    table = contribution_run(args.run, args.data, args.out, seed=args.seed, n_boot=args.n_boot, cache_dir=args.cache_dir)
    metric = "drop_pcc_tilt" if "drop_pcc_tilt" in table else "drop_pcc"
    top = table.sort_values(metric, ascending=False).head(5)
    print("strongest electrodes (drop of " + metric[5:] + " when occluded): "
          + ", ".join(f"{n} {v:+.3f}" for n, v in zip(top["name"], top[metric])))
    print(f"report: {Path(args.out) / 'report.html'}")
    return 0
