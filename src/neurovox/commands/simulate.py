"""`neurovox simulate`: write a simulated participant (data files + ground truth + config).

    neurovox simulate --out sim/ [--encoding realistic|linear] [--layout grid8x8] [--snr-db 0] [--n-trials 300]

Simulates a participant speaking words over 5 tasks (shipped synthetic voices) with ECoG/sEEG high gamma
from an encoding model (realistic by default: articulatory, auditory and planning components with
nonlinearities, variability and drift, docs/simulator.md; or linear, a linear filter of the spectrogram),
and writes Flinker HDF5 (high gamma, 125 Hz) and/or SWPD iBIDS/NWB (raw, 1024 Hz) plus
ground_truth.npz/.json and config.yaml. Precedence: defaults < --config < flags < --set.
"""

from __future__ import annotations

import argparse

from neurovox.cli import add_config_args
from neurovox.simulate.config import ENCODINGS, LAYOUTS, SIM_KINDS


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from neurovox.cli import command_parser

    p = command_parser(subparsers, "simulate", "write a simulated participant with known ground truth", __doc__, run)
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (must not exist or be empty)")
    p.add_argument("--layout", choices=LAYOUTS, help="electrode layout (default: grid8x8)")
    p.add_argument("--encoding", choices=ENCODINGS,
                   help="encoding model: realistic (default; articulatory, auditory and planning components with "
                        "nonlinearities, variability and drift; docs/simulator.md) or linear (a linear filter of the "
                        "spectrogram, for comparison)")
    p.add_argument("--kind", choices=SIM_KINDS, help="high_gamma (Flinker HDF5), raw (SWPD NWB) or both (default)")
    p.add_argument("--snr-db", type=float, help="per-channel SNR of the high gamma in dB (default 0)")
    p.add_argument("--n-trials", type=int, help="number of spoken words (default 300)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    add_config_args(p)
    return p


def build_config(args: argparse.Namespace):
    """Defaults < --config < the flags below < --set (as every command): a SimulateRunConfig."""
    from neurovox.cli import config_from_args
    from neurovox.simulate.output import SimulateRunConfig  # here: the encoding models import torch and scipy

    flags = [f"simulate.{key}={getattr(args, key)}" for key in ("layout", "encoding", "kind", "snr_db", "n_trials")
             if getattr(args, key) is not None]
    return config_from_args(SimulateRunConfig, args, flags)


def run(args: argparse.Namespace) -> int:
    from neurovox.simulate.output import write_simulation

    write_simulation(build_config(args), args.out, overwrite=args.overwrite)
    return 0
