"""`neurovox train likelihood`: the neural likelihood model A (mel window -> z-scored neural features)
of generative decoding, and optionally the "dps" run that combines it with a prior.

    neurovox train likelihood --data sim/sim01.h5 --out runs/lik --quick
    neurovox train likelihood --data sim/sim01.h5 --out runs/lik --prior runs/prior --dps-out runs/dps \\
        [--dps-set n_steps=50 --dps-set algorithm=dps --dps-set warm_start_run=runs/linear
         --dps-set vocoder=formant --dps-set speech_run=runs/speech]
    neurovox decode --run runs/dps --data sim/sim01.h5 --out decoded/dps ; neurovox evaluate --run runs/dps ...

The dps run samples with DAPS by default (Langevin on the clean mel at each noise level;
`neurovox.diffusion.daps`); `algorithm=dps` selects Chung et al.'s DPS. With --dps-out and a
finished --out, training is skipped and only the dps run is (re)made.
Whisper features: --set likelihood.whisper_dir=/path/to/local/whisper (never downloaded).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from neurovox.cli import add_config_args, add_run_args, command_parser, config_from_args


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = command_parser(subparsers, "likelihood",
                       "train the neural likelihood model (generative decoding)", __doc__, run)
    p.add_argument("--data", required=True, metavar="FILE", help="recording (Flinker .h5, SWPD .nwb / BIDS, ...)")
    p.add_argument("--cache-dir", default=None, metavar="DIR", help="feature cache (default: neurovox's cache)")
    p.add_argument("--prior", default=None, metavar="RUN", help="finished prior run (needed for --dps-out)")
    p.add_argument("--dps-out", default=None, metavar="RUN", help="also write a dps run (prior + this likelihood)")
    p.add_argument("--dps-set", action="append", default=[], metavar="KEY=VALUE",
                   help="a DpsConfig setting of the dps run, e.g. n_steps=50 (repeatable)")
    add_config_args(p)
    add_run_args(p)
    return p


def check_finished_likelihood(out: str, data: str, cfg, *, prior_run: str | None, speech_run: str | None,
                              cache_dir: str | None) -> None:
    """The leak checks of `train_likelihood` for an existing likelihood run: its recorded test trials
    (refused when it records none) against the prior and the speech run."""
    from neurovox.diffusion.train_likelihood import check_generative_runs
    from neurovox.errors import RunError
    from neurovox.io import read_recording
    from neurovox.preprocess import prepare
    from neurovox.preprocess.leakage import training_sources
    from neurovox.preprocess.splits import split_from_config
    from neurovox.runs import open_run

    lik = open_run(out, expect_kind="likelihood", require_done=True)
    if training_sources(lik.meta) is None:
        raise RunError(f"The likelihood run {out!r} does not record which trials it trained on (made by an older "
                       "neurovox); retrain it: neurovox train likelihood ... --overwrite.")
    prepared = prepare(read_recording(data), cfg.prepare, cache_dir)
    split = split_from_config(prepared, cfg.split, n_target_frames=cfg.window.n_target_frames,
                              n_lead_frames=cfg.window.n_lead_frames)
    check_generative_runs(prepared, split, data, prior_run=prior_run, speech_run=speech_run, seed=cfg.split.seed)


def run(args: argparse.Namespace) -> int:
    import torch

    from neurovox.config import parse_overrides
    from neurovox.diffusion.decode import make_dps_run
    from neurovox.diffusion.train_likelihood import QUICK_LIKELIHOOD, LikelihoodRunConfig, train_likelihood
    from neurovox.errors import ConfigError

    if args.dps_out and not args.prior:
        raise ConfigError("--dps-out needs --prior RUN (a finished `neurovox train prior` run).")
    dps_overrides = parse_overrides(args.dps_set)
    cfg = config_from_args(LikelihoodRunConfig, args, quick=QUICK_LIKELIHOOD)
    speech_run = dps_overrides.get("speech_run") or None
    if not ((Path(args.out) / "DONE").exists() and args.dps_out and not args.overwrite):
        torch.manual_seed(cfg.seed)  # weight initialisation; only the CLI seeds
        run_ = train_likelihood(args.data, args.out, cfg, overwrite=args.overwrite, cache_dir=args.cache_dir,
                                prior_run=args.prior, speech_run=speech_run)
        print(f"likelihood run written to {run_.path}")
    elif args.dps_out:  # training skipped: still check the prior and the speech run against its test trials
        check_finished_likelihood(args.out, args.data, cfg, prior_run=args.prior, speech_run=speech_run,
                                  cache_dir=args.cache_dir)
    if args.dps_out:
        dps = make_dps_run(args.dps_out, args.prior, args.out, overrides=dps_overrides, seed=cfg.seed,
                           overwrite=args.overwrite)
        print(f"dps run written to {dps.path}; decode with `neurovox decode --run {dps.path} --data {args.data} --out DIR`")
    return 0
