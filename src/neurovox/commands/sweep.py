"""`neurovox sweep`: participants x decoders x causal flags x split folds, one job per cell (submitit).

    neurovox sweep --grid grid.yaml --out sweeps/study                       # local subprocesses
    neurovox sweep --grid grid.yaml --out sweeps/study --executor slurm      # the same grid as SLURM jobs

grid.yaml:

    recordings: [sim1/sim01_high_gamma.h5, sim2/sim02_high_gamma.h5]   # one per participant
    models: [lstm, linear]
    causal: [false, true]
    splits: [kfold]
    n_folds: 5
    folds: [0, 1]                   # [] = every fold
    quick: false
    overrides: [decoder.max_epochs=30]
    resources: {timeout_min: 720, gpus_per_node: 1, cpus_per_task: 8, mem_gb: 32, slurm_partition: gpu}

Rerun the same command to resume: finished cells are skipped, interrupted ones resume from their checkpoints,
failed ones are retried. OUT/report.html and OUT/summary.csv aggregate per participant and across participants.
"""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    from neurovox.cli import command_parser

    p = command_parser(subparsers, "sweep", "run a grid of participants x decoders x folds as jobs (local or SLURM), "
                       "one aggregated report", __doc__, run)
    p.add_argument("--grid", required=True, metavar="GRID.yaml", help="the grid (see above)")
    p.add_argument("--out", required=True, metavar="DIR", help="sweep folder (rerun the same command to resume)")
    p.add_argument("--executor", default="local", choices=("local", "slurm", "debug"),
                   help="local: subprocesses on this machine (default); slurm: sbatch jobs; debug: in this process")
    p.add_argument("--max-parallel", type=int, default=None, metavar="N",
                   help="jobs running at once (default: local one per CPU core, each with its share of the "
                        "threads; slurm all, queued by the scheduler; debug 1)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a grid entry, e.g. resources.slurm_partition=gpu or quick=true (repeatable)")
    return p


def run(args: argparse.Namespace) -> int:
    from neurovox.errors import ConfigError
    from neurovox.sweep import run_sweep

    if args.max_parallel is not None and args.max_parallel < 1:
        raise ConfigError(f"--max-parallel must be at least 1, got {args.max_parallel}.")
    result = run_sweep(args.grid, args.out, executor=args.executor, max_parallel=args.max_parallel,
                       overrides=args.overrides)
    return 0 if result["summary"]["n_done"] == result["summary"]["n_cells"] else 1
