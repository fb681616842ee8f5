"""`neurovox sweep`: a grid of participants x decoders x directions x split folds, one job per cell.

    neurovox sweep --grid grid.yaml --out sweeps/study [--executor local|slurm|debug] [--max-parallel N]

The grid (YAML, `SweepGrid`) names the recordings (one per participant), the decoders, the causal flags, the
split schemes and folds, and the config overrides of every cell. Each (recording, model, causal, split, fold)
cell is one job, submitted through submitit (`local`: subprocesses on this machine; `slurm`: sbatch jobs;
`debug`: in this process, one after another), that runs `neurovox.cv.run_fold` - train the decoder on the
fold's training trials, evaluate it on its test trials, write DONE - in

    OUT/cells/<participant>/<model>[-causal]/<split>-fold<k>/   (run/, eval/, DONE)

Formant-target decoders need a speech model; each participant, split and fold gets one, trained on that
fold's training trials only (the no-leak rule of `neurovox cv --train-speech`) in OUT/speech/<participant>/
<split>-fold<k>/ by a first round of jobs, and shared by every decoder of that fold.

Rerunning the same command skips cells with DONE; an interrupted cell resumes from its checkpoints (its
decoder run reopens, a half-written evaluation is redone). A failed cell is reported with its log and does not
stop the others (the command then exits 1). OUT/sweep.json holds every cell's state, job id and log;
OUT/report.html, OUT/summary.csv and OUT/sweep.png aggregate the finished cells (`neurovox.sweep.report`).
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from neurovox.errors import ConfigError
from neurovox.utils.files import write_json_atomic

EXECUTORS = ("local", "slurm", "debug")
POLL_S = 1.0  # s between looks at running jobs


@dataclass
class SweepGrid:
    """What a sweep runs (the grid file; `--set` overrides it like any config)."""

    recordings: list[str] = field(default_factory=list)  # one per participant; relative paths: to the grid file
    models: list[str] = field(default_factory=lambda: ["lstm", "linear"])
    causal: list[bool] = field(default_factory=lambda: [False])
    splits: list[str] = field(default_factory=lambda: ["kfold"])  # kfold | flinker | lowo | swpd
    n_folds: int = 5                    # folds of kfold / swpd
    folds: list[int] = field(default_factory=list)  # folds to run ([] = every fold of each split)
    quick: bool = False                 # every cell with `train decoder --quick` (and quick speech) settings
    seed: int = 0
    overrides: list[str] = field(default_factory=list)         # KEY=VALUE for every decoder (`train decoder --set`)
    speech_overrides: list[str] = field(default_factory=list)  # KEY=VALUE for every speech model
    cache_dir: str = ""                 # feature cache shared by the jobs ("" = neurovox's default)
    resources: dict[str, Any] = field(default_factory=dict)    # submitit parameters of every job: timeout_min,
    # cpus_per_task, gpus_per_node, mem_gb, nodes, slurm_partition, slurm_account, slurm_qos, ... (submitit's names)

    def __post_init__(self) -> None:
        from neurovox.cv import SPLITS
        from neurovox.decoders.config import MODELS
        from neurovox.utils.check import check_option

        for m in self.models:
            check_option("sweep models", m, MODELS)
        for s in self.splits:
            check_option("sweep splits", s, SPLITS)
        if self.n_folds < 2:
            raise ConfigError(f"n_folds must be at least 2, got {self.n_folds}.")


# Settings that change what a finished cell holds: a rerun with other values would mix two experiments.
CELL_SETTINGS = ("n_folds", "quick", "seed", "overrides", "speech_overrides")


@dataclass(frozen=True)
class Cell:
    """One job: a decoder trained and evaluated on one fold of one participant."""

    participant: str
    recording: str
    model: str
    causal: bool
    split: str
    fold: int

    @property
    def decoder(self) -> str:
        return self.model + ("-causal" if self.causal else "")

    @property
    def key(self) -> str:
        return f"{self.participant}/{self.decoder}/{self.split}-fold{self.fold}"

    @property
    def speech_key(self) -> str:
        return f"{self.participant}/{self.split}-fold{self.fold}"


def load_grid(path: str | Path, overrides: list[str] | None = None) -> SweepGrid:
    """The grid file with `--set` overrides; recordings resolved against the grid file's folder."""
    from neurovox.config import load_config

    grid = load_config(SweepGrid, path, overrides)
    if not grid.recordings:
        raise ConfigError(f"The grid {str(path)!r} names no recordings: add `recordings: [a.h5, b.h5]` (one per "
                          "participant).")
    base = Path(path).resolve().parent
    grid.recordings = [str(p if Path(p).is_absolute() else (base / p).resolve()) for p in grid.recordings]
    missing = [p for p in grid.recordings if not Path(p).exists()]
    if missing:
        raise ConfigError(f"Recordings of the grid not found: {', '.join(missing)} (relative paths are read from the "
                          "grid file's folder).")
    return grid


def participant_names(recordings: list[str]) -> list[str]:
    """Each recording's file stem (`_high_gamma` dropped), numbered when two share one."""
    stems = [Path(p).stem.removesuffix("_high_gamma") for p in recordings]
    return [s if stems.count(s) == 1 else f"{s}-{i}" for i, s in enumerate(stems)]


def expand(grid: SweepGrid) -> list[Cell]:
    from neurovox.cv import folds_of_split

    cells = []
    for name, rec in zip(participant_names(grid.recordings), grid.recordings):
        for split in grid.splits:
            n = folds_of_split(split, grid.n_folds, rec)
            folds = [k for k in (grid.folds or range(n)) if k < n]
            for model, causal, fold in itertools.product(grid.models, grid.causal, folds):
                cells.append(Cell(name, rec, model, causal, split, fold))
    return cells


def needs_speech(grid: SweepGrid, model: str) -> bool:
    """Whether `model` decodes through the formant synthesizer with this grid's settings."""
    from neurovox.config import load_config
    from neurovox.decoders.train import DecoderRunConfig, quick_settings

    cfg = load_config(DecoderRunConfig, None, [f"decoder.model={model}", *grid.overrides],
                      base=quick_settings(model) if grid.quick else None)
    return model != "linear" and cfg.decoder.target == "formant"


# Jobs (run in the worker process) -------------------------------------------------------------------

def run_cell(cell: Cell, grid: SweepGrid, out: str, threads: int | None) -> str:
    """Train and evaluate one cell (resuming what an earlier job left); returns its key."""
    from neurovox.cv import default_evaluate, default_train, run_fold

    _start_worker(Path(out) / "cells" / cell.key, threads)
    speech = Path(out) / "speech" / cell.speech_key if needs_speech(grid, cell.model) else None
    cache = grid.cache_dir or None
    run_fold(cell.model, cell.fold, Path(out) / "cells" / cell.key,
             train_fn=functools.partial(default_train, cache_dir=cache),
             evaluate_fn=functools.partial(default_evaluate, cache_dir=cache),
             data_path=Path(cell.recording), speech_run=speech, seed=grid.seed, n_folds=grid.n_folds,
             split=cell.split, causal=cell.causal, quick=grid.quick, overrides=tuple(grid.overrides))
    return cell.key


def run_speech(cell: Cell, grid: SweepGrid, out: str, threads: int | None) -> str:
    """The speech model of a cell's participant and fold, on that fold's training trials only."""
    from neurovox.cv import train_fold_speech

    run_dir = Path(out) / "speech" / cell.speech_key
    # worker.json beside the run, not in it: a run directory holds only what its run wrote
    _start_worker(run_dir.parent / f".{run_dir.name}", threads)
    train_fold_speech(fold=cell.fold, n_folds=grid.n_folds, split=cell.split, data_path=Path(cell.recording),
                      run_dir=run_dir, seed=grid.seed, quick=grid.quick, overrides=grid.speech_overrides)
    return cell.speech_key


def _start_worker(folder: Path, threads: int | None) -> None:
    """Torch threads of this job, and its process id in FOLDER/worker.json (to find, or stop, a job)."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(folder / "worker.json", {"pid": os.getpid(), "host": os.uname().nodename,
                                               "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")})


# The driver -------------------------------------------------------------------------------------------

def make_executor(kind: str, folder: Path, resources: dict[str, Any]) -> Any:
    """A submitit executor for `kind` with the grid's resources (unknown names: ConfigError)."""
    import submitit

    from neurovox.utils.check import check_option

    check_option("--executor", kind, EXECUTORS)
    try:
        executor = submitit.AutoExecutor(folder=folder, cluster=kind)
    except RuntimeError as exc:  # slurm without srun/sbatch on this machine
        raise ConfigError(f"--executor {kind}: {exc} Run the sweep on the cluster's login node, or use --executor "
                          "local here.") from None
    params = {"timeout_min": 24 * 60, "name": "neurovox-sweep", **resources}
    try:
        executor.update_parameters(**params)
    except (NameError, ValueError, TypeError) as exc:
        raise ConfigError(f"grid resources {resources!r}: {exc}") from None
    return executor


def run_sweep(grid_path: str | Path, out: str | Path, *, executor: str = "local", max_parallel: int | None = None,
              overrides: list[str] | None = None, progress: bool = True) -> dict[str, Any]:
    """Run (or resume) every cell of the grid; returns OUT/sweep.json's content. See the module docstring."""
    from neurovox.sweep.report import write_sweep_report

    grid = load_grid(grid_path, overrides)
    out = Path(out)
    _check_same_grid(out, grid)
    cells = expand(grid)
    if not cells:
        raise ConfigError(f"The grid {str(grid_path)!r} has no cells (check models, causal, splits and folds).")
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "grid.json", asdict(grid))
    if max_parallel is None:
        max_parallel = {"local": os.cpu_count() or 1, "debug": 1, "slurm": len(cells)}[executor]
    # local jobs share this machine's cores; a cluster job has its own
    threads = max(1, (os.cpu_count() or 1) // max_parallel) if executor != "slurm" else None
    ex = make_executor(executor, out / "logs", grid.resources)
    state = _load_state(out, cells)

    todo = [c for c in cells if not (out / "cells" / c.key / "DONE").exists()]
    speech = {c.speech_key: c for c in todo if needs_speech(grid, c.model)}
    speech_todo = [c for c in speech.values() if not (out / "speech" / c.speech_key / "DONE").exists()]
    if progress:
        print(f"neurovox sweep: {len(cells)} cells ({len(cells) - len(todo)} already done, {len(todo)} to run"
              + (f", {len(speech_todo)} speech models first" if speech_todo else "")
              + f") on the {executor} executor, at most {max_parallel} at a time; state in {out / 'sweep.json'}",
              flush=True)
    for c in cells:
        if c not in todo:
            state["cells"][c.key].update(state="done")
    failed_speech = _run_jobs([(f"speech/{c.speech_key}", run_speech, c) for c in speech_todo], ex, executor,
                              max_parallel, grid, out, threads, state, "speech models", progress)
    runnable = [c for c in todo if f"speech/{c.speech_key}" not in failed_speech]
    for c in todo:
        if c not in runnable:
            state["cells"][c.key].update(state="failed", error=f"its speech model failed (see speech/{c.speech_key})")
    _run_jobs([(c.key, run_cell, c) for c in runnable], ex, executor, max_parallel, grid, out, threads, state,
              "sweep cells", progress)
    _save_state(out, state)
    summary = write_sweep_report(out, cells, state)
    failed = {k: v for k, v in state["cells"].items() if v["state"] != "done"}
    if progress:
        print(f"{len(cells) - len(failed)} of {len(cells)} cells done; report: {out / 'report.html'}")
        for key, v in failed.items():
            print(f"  FAILED {key}: {v.get('error', '')} (log: {v.get('log', '-')})")
    return {**state, "summary": summary}


def _run_jobs(jobs: list[tuple[str, Any, Cell]], ex: Any, executor: str, max_parallel: int, grid: SweepGrid,
              out: Path, threads: int | None, state: dict[str, Any], desc: str, progress: bool) -> set[str]:
    """Submit `jobs` (key, function, cell), at most `max_parallel` running; returns the keys that failed."""
    from tqdm.auto import tqdm

    entries = state["cells"] if desc == "sweep cells" else state.setdefault("speech", {})
    name = (lambda key: key.removeprefix("speech/")) if desc != "sweep cells" else (lambda key: key)
    pending, running, failed = list(jobs), {}, set()
    bar = tqdm(total=len(jobs), desc=desc, disable=not progress or not jobs, dynamic_ncols=True)
    try:
        while pending or running:
            while pending and len(running) < max_parallel:
                key, fn, cell = pending.pop(0)
                job = ex.submit(fn, cell, grid, str(out), threads)
                running[key] = job
                entries[name(key)] = {"state": "running", "job_id": str(job.job_id), "log": _log_path(job, executor)}
                _save_state(out, state)
                if executor == "debug":  # runs in this process, now
                    _finish(job, entries[name(key)], key, failed)
                    running.pop(key)
                    bar.update(1)
            for key, job in list(running.items()):
                if job.done():
                    running.pop(key)
                    _finish(job, entries[name(key)], key, failed)
                    bar.update(1)
                    bar.set_postfix(failed=len(failed))
                    _save_state(out, state)
            if running:
                time.sleep(POLL_S)
    except KeyboardInterrupt:
        for key, job in running.items():
            if executor == "local":
                job.cancel(check=False)
            entries[name(key)].update(state="interrupted")
        _save_state(out, state)
        raise
    finally:
        bar.close()
    return failed


def _finish(job: Any, entry: dict[str, Any], key: str, failed: set[str]) -> None:
    """Record a finished job; a failed one is reported, never fatal to the sweep."""
    from submitit.core.utils import FailedJobError, UncompletedJobError

    try:
        job.result()
        entry.update(state="done", error="")
        return
    except Exception as exc:
        if isinstance(exc, UncompletedJobError) and not isinstance(exc, FailedJobError):
            error = (f"job {job.job_id} ended without a result (killed, or out of memory or time); rerun the sweep "
                     "to resume it from its checkpoints")
        else:  # raised in the job: the last line of its traceback
            lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
            error = lines[-1][:300] if lines else type(exc).__name__
    entry.update(state="failed", error=error)
    failed.add(key)


def _log_path(job: Any, executor: str) -> str:
    return "-" if executor == "debug" else str(job.paths.stderr)


def _load_state(out: Path, cells: list[Cell]) -> dict[str, Any]:
    path = out / "sweep.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    prior = old.get("cells", {})
    return {"cells": {c.key: {**prior.get(c.key, {"state": "pending"}), **asdict(c)} for c in cells},
            "speech": old.get("speech", {})}


def _save_state(out: Path, state: dict[str, Any]) -> None:
    write_json_atomic(out / "sweep.json", state)


def _check_same_grid(out: Path, grid: SweepGrid) -> None:
    """Refuse a rerun whose cell settings differ from those the finished cells ran with."""
    path = out / "grid.json"
    if not path.exists():
        return
    old, new = json.loads(path.read_text()), asdict(grid)
    diff = [f"{k}: {old.get(k)!r} -> {new[k]!r}" for k in CELL_SETTINGS if old.get(k) != new[k]]
    if diff:
        raise ConfigError(f"{str(out)!r} holds a sweep run with other cell settings ({'; '.join(diff)}); its finished "
                          "cells would be mixed with new ones. Use another --out, or the grid it ran with (recordings, "
                          "models, causal flags, splits, folds and resources may change).")
