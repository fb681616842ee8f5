"""`neurovox demo`: the whole pipeline on a simulated participant, end to end.

simulate -> train speech model -> train decoders (linear baseline, non-causal and causal deep
decoders) -> evaluate each on held-out trials (with chance, no-neural baselines and ceiling) -> one comparison report.

Every stage is an ordinary neurovox command writing its own run directory under --out, so a rerun
after an interruption skips finished stages and resumes unfinished ones.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from neurovox.cli import command_parser

    p = command_parser(subparsers, "demo",
                       "simulate a participant, train, decode, evaluate and write the report", __doc__, run)
    p.add_argument("--out", default="demo_out", metavar="DIR", help="output directory (default: demo_out)")
    p.add_argument("--quick", action="store_true", help="a first look in about 4 minutes on 2 CPU cores")
    p.add_argument("--seed", type=int, default=0, help="random seed for every stage")
    p.add_argument("--overwrite", action="store_true", help="start over instead of resuming")
    p.add_argument("--encoding", choices=("realistic", "linear"), default="realistic",
                   help="simulated participant's encoding model (default realistic; docs/simulator.md)")


def run(args: argparse.Namespace) -> int:
    from neurovox.demo import run_demo

    report = run_demo(Path(args.out), quick=args.quick, seed=args.seed, overwrite=args.overwrite,
                      encoding=args.encoding)
    print(f"\nReport: {report.resolve()}")
    return 0

