"""`neurovox decode`: decode the test trials (or all trials) of a recording with a trained run.

    neurovox decode --run runs/resnet --data sim/sim01.h5 --out decoded/resnet [--trials all]

Writes per-trial WAVs (decoded and reference), parameter trajectories (CSV + NPZ, formant models),
spectrogram PNGs and decoded.npz. Decoder runs (kind "decoder") are decoded by neurovox.decoders,
diffusion posterior-sampling runs (kind "dps") by neurovox.diffusion.
"""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("decode", help="decode trials of a recording with a trained run",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, metavar="RUN", help="a finished decoder or dps run directory")
    p.add_argument("--data", required=True, metavar="FILE", help="recording to decode")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (written atomically)")
    p.add_argument("--trials", choices=("test", "all"), default="test",
                   help="the run's test split (default) or every trial of the file")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthesizer noise / sampler")
    p.set_defaults(func=run)
    return p


def decode_any(run_dir: str, data: str, out: str, trials: str = "test", seed: int = 0):
    """Dispatch on the run kind: "decoder" -> neurovox.decoders, "dps" -> neurovox.diffusion."""
    from neurovox.runs import open_run

    run = open_run(run_dir, expect_kind=("decoder", "dps"), require_done=True)
    if run.kind == "dps":
        from neurovox.diffusion import decode_run  # lazy: the diffusion stack is only needed here
    else:
        from neurovox.decoders.decode import decode_run
    return decode_run(run.path, data, out, trials=trials, seed=seed)


def run(args: argparse.Namespace) -> int:
    path = decode_any(args.run, args.data, args.out, args.trials, args.seed)
    print(f"decoded trials written to {path}")
    return 0
