"""`neurovox decode`: decode the test trials (or all trials) of a recording with a trained run.

    neurovox decode --run runs/resnet --data sim/sim01.h5 --out decoded/resnet [--trials all]

Writes per-trial WAVs (decoded and reference), parameter trajectories (CSV + NPZ, formant models),
spectrogram PNGs and decoded.npz. Decoder runs (kind "decoder") are decoded by neurovox.decoders,
diffusion posterior-sampling runs (kind "dps") by neurovox.diffusion.
"""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from neurovox.cli import command_parser

    p = command_parser(subparsers, "decode", "decode trials of a recording with a trained run", __doc__, run)
    p.add_argument("--run", required=True, metavar="RUN", help="a finished decoder or dps run directory")
    p.add_argument("--data", required=True, metavar="FILE", help="recording to decode")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (written atomically)")
    p.add_argument("--trials", choices=("test", "all"), default="test",
                   help="the run's test split (default) or every trial of the file")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthesizer noise / sampler")
    return p


def run(args: argparse.Namespace) -> int:
    from neurovox.decode import decode_run

    path = decode_run(args.run, args.data, args.out, trials=args.trials, seed=args.seed)
    print(f"decoded trials written to {path}")
    return 0
