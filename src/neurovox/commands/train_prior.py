"""`neurovox train prior`: the unconditional mel diffusion prior of generative decoding.

    neurovox train prior --out runs/prior --quick                       # shipped multi-voice corpus only
    neurovox train prior --speech sim/sim01.h5 more_wavs/ --out runs/prior

--speech takes audio files or directories (WAV/FLAC/OGG, searched recursively) and recordings
(anything `neurovox.io.read_recording` reads: their microphone audio); the shipped multi-voice
corpus is added unless --set prior.use_corpus=false. A recording contributes only the trials outside the
test set of a split (default flinker; --set prior.split_scheme=kfold --set prior.split_fold=2 ...), so
the prior never hears the audio a decoder of that recording is scored on. On a simulated participant
leave its corpus voice out (--set prior.exclude_voices=[flite_awb]): the likelihood stage and
`neurovox evaluate` refuse a prior that heard the test trials or the voice (run.json "training_data").
"""

from __future__ import annotations

import argparse

from neurovox.cli import add_config_args, add_run_args, command_parser


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = command_parser(subparsers, "prior", "train the mel diffusion prior (generative decoding)", __doc__, run)
    p.add_argument("--speech", nargs="*", default=[], metavar="DIR_OR_FILE",
                   help="audio files/dirs and recordings whose speech trains the prior (plus the shipped corpus)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    add_config_args(p)
    add_run_args(p)
    return p


def build_config(args: argparse.Namespace):
    """Defaults <- --quick <- --config <- --speech/--seed <- --set."""
    from pathlib import Path

    from neurovox.cli import config_from_args
    from neurovox.diffusion.train_prior import QUICK_PRIOR, PriorRunConfig

    flags = []
    if args.speech:
        flags.append("prior.speech_paths=[" + ", ".join(repr(str(Path(s).resolve())) for s in args.speech) + "]")
    if args.threads:
        flags.append(f"prior.num_threads={args.threads}")
    return config_from_args(PriorRunConfig, args, flags, quick=QUICK_PRIOR)


def run(args: argparse.Namespace) -> int:
    import torch

    from neurovox.diffusion.train_prior import train_prior

    cfg = build_config(args)
    torch.manual_seed(cfg.seed)  # weight initialisation; only the CLI seeds
    run_ = train_prior(args.out, cfg, overwrite=args.overwrite)
    print(f"prior run written to {run_.path}")
    return 0
