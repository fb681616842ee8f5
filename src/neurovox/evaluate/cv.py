"""`neurovox cv`: cross-validate one or several decoders, fold by fold, resumable.

    run_cv("data/sim.h5", speech_run="runs/speech", models=["resnet", "lstm", "linear"],
           out_dir="runs/cv", split="kfold", n_folds=5)

Each (model, fold) is an independent job in ``OUT/<model>/fold<k>/``: train the decoder into
``run/``, evaluate it into ``eval/``, then write ``DONE`` (with the fold's summary). A fold with
``DONE`` is never recomputed, so an interrupted cross-validation resumes where it stopped. The
folds are aggregated into ``OUT/cv_summary.json`` (mean and SEM across folds of every metric,
its chance levels and the ceiling) and one comparison report ``OUT/report.html``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from neurovox.errors import ConfigError
from neurovox.utils.check import check_option
from neurovox.utils.files import write_json_atomic

SPLITS = ("kfold", "flinker", "lowo", "swpd")

TrainFn = Callable[..., Path]
EvalFn = Callable[..., dict[str, Any]]


def default_train(*, model: str, fold: int, n_folds: int, split: str, causal: bool, data_path: Path,
                  speech_run: Path | None, run_dir: Path, seed: int, quick: bool, overrides: Sequence[str],
                  config_path: str | Path | None = None, cache_dir: str | Path | None = None) -> Path:
    """Train one fold with `neurovox.decoders.train.train_decoder`, configured as `neurovox train decoder`.

    Config layering: defaults <- --quick settings <- `config_path` <- model/causal/split/fold/seed <- overrides.
    A fold whose run finished earlier (DONE in run/) is reused as it is.
    """
    import torch

    from neurovox.config import load_config
    from neurovox.decoders.train import DecoderRunConfig, quick_settings, train_decoder
    from neurovox.runs import open_run

    if (run_dir / "DONE").exists():
        open_run(run_dir, expect_kind="decoder", require_done=True)
        return run_dir
    flags = [f"decoder.model={model}", f"decoder.causal={'true' if causal else 'false'}", f"split.scheme={split}",
             f"split.fold={fold}", f"split.n_folds={n_folds}", f"seed={seed}"]
    cfg = load_config(DecoderRunConfig, config_path, flags + list(overrides), base=quick_settings(model) if quick else None)
    torch.manual_seed(cfg.seed)  # cv is a CLI-level driver: it seeds each fold's training like the CLI does
    return Path(train_decoder(data_path, run_dir, cfg, speech_run=speech_run, progress=False,
                              cache_dir=Path(cache_dir) if cache_dir else None))


def default_evaluate(run_dir: Path, data_path: Path, out_dir: Path, seed: int, speech_run: Path | None,
                     cache_dir: str | Path | None = None) -> dict[str, Any]:
    from neurovox.evaluate.evaluate import evaluate_run

    return evaluate_run(run_dir, data_path, out_dir, seed, speech_run=speech_run, cache_dir=cache_dir)


def _fold_summary(result: dict[str, Any]) -> dict[str, Any]:
    return {"metrics": result.get("metrics"), "chance": result.get("chance"), "ceiling": result.get("ceiling")}


def run_fold(model: str, fold: int, fold_dir: Path, *, train_fn: TrainFn, evaluate_fn: EvalFn,
             data_path: Path, speech_run: Path | None, seed: int, **train_kw: Any) -> dict[str, Any]:
    """Train + evaluate one fold unless its DONE file exists; returns the fold summary."""
    done = fold_dir / "DONE"
    if done.exists():
        return json.loads(done.read_text())
    fold_dir.mkdir(parents=True, exist_ok=True)
    run_dir = train_fn(model=model, fold=fold, data_path=data_path, speech_run=speech_run,
                       run_dir=fold_dir / "run", seed=seed, **train_kw)
    result = evaluate_fn(Path(run_dir), data_path, fold_dir / "eval", seed, speech_run)
    summary = {"model": model, "fold": fold, **_fold_summary(result),
               "report": str((fold_dir / "eval" / "report.html").resolve())}
    write_json_atomic(done, summary)
    return summary


def aggregate_folds(folds: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and SEM across folds of each fold's mean, for metrics, chance levels and ceiling."""
    def agg(getter: Callable[[dict[str, Any]], dict[str, Any] | None]) -> dict[str, dict[str, float]] | None:
        tables = [getter(f) for f in folds]
        tables = [t for t in tables if t]
        if not tables:
            return None
        out = {}
        for metric in tables[0]:
            vals = np.array([t[metric]["mean"] for t in tables if t.get(metric, {}).get("mean") is not None], dtype=float)
            out[metric] = {"mean": float(vals.mean()) if len(vals) else None,
                           "sem": float(vals.std(ddof=1) / np.sqrt(len(vals))) if len(vals) > 1 else None,
                           "n_folds": int(len(vals)), "per_fold": vals.tolist()}
        return out

    chance_kinds = sorted({k for f in folds for k in (f.get("chance") or {})})
    return {"metrics": agg(lambda f: f.get("metrics")),
            "chance": {k: agg(lambda f, k=k: (f.get("chance") or {}).get(k)) for k in chance_kinds},
            "ceiling": agg(lambda f: f.get("ceiling")),
            "n_folds": len(folds)}


def run_cv(data_path: str | Path, models: Sequence[str], out_dir: str | Path, *, speech_run: str | Path | None = None,
           causal: bool = False, split: str = "kfold", n_folds: int = 5, seed: int = 0, quick: bool = False,
           overrides: Sequence[str] = (), config_path: str | Path | None = None,
           cache_dir: str | Path | None = None, train_fn: TrainFn | None = None,
           evaluate_fn: EvalFn | None = None, progress: bool = True) -> dict[str, Any]:
    """Cross-validate `models` on `data_path`; see the module docstring. Returns cv_summary.json's content."""
    check_option("split", split, SPLITS)
    if not models:
        raise ConfigError("run_cv needs at least one model (e.g. --models resnet,lstm,linear).")
    if n_folds < 2 and split in ("kfold", "swpd"):
        raise ConfigError(f"--folds must be at least 2 for the {split!r} split, got {n_folds}.")
    data_path = Path(data_path)
    if not data_path.exists():
        raise ConfigError(f"Data file {str(data_path)!r} does not exist.")
    out_dir = Path(out_dir)
    if train_fn is None:
        train_fn = functools.partial(default_train, config_path=config_path, cache_dir=cache_dir)
    if evaluate_fn is None:
        evaluate_fn = functools.partial(default_evaluate, cache_dir=cache_dir)
    folds_of_split = 1 if split == "flinker" else n_folds
    jobs = [(m, k) for m in models for k in range(folds_of_split)]
    n_done = sum((out_dir / m / f"fold{k}" / "DONE").exists() for m, k in jobs)
    if progress:
        print(f"neurovox cv: {len(models)} model(s) x {folds_of_split} fold(s) = {len(jobs)} jobs "
              f"({n_done} already done) in {out_dir}")
    from tqdm.auto import tqdm

    results: dict[str, list[dict[str, Any]]] = {m: [] for m in models}
    for model, fold in tqdm(jobs, desc="cv folds", disable=not progress):
        results[model].append(run_fold(
            model, fold, out_dir / model / f"fold{fold}", train_fn=train_fn, evaluate_fn=evaluate_fn,
            data_path=data_path, speech_run=Path(speech_run) if speech_run else None, seed=seed,
            n_folds=n_folds, split=split, causal=causal, quick=quick, overrides=tuple(overrides)))
    summary = {"data": str(data_path.resolve()), "split": split, "n_folds": folds_of_split, "causal": causal,
               "seed": seed, "models": {m: {**aggregate_folds(results[m]), "folds": results[m]} for m in models}}
    write_json_atomic(out_dir / "cv_summary.json", summary)
    from neurovox.report import write_comparison_report

    entries = [{"name": f"{m}{' (causal)' if causal else ''}", **{k: summary["models"][m][k]
                for k in ("metrics", "chance", "ceiling")}, "n_folds": folds_of_split,
                "report": results[m][0].get("report")} for m in models]
    write_comparison_report(entries, out_dir, title=f"neurovox cross-validation ({split}, {folds_of_split} folds)",
                            notes="Mean and SEM across folds of each fold's mean over its test trials; the fold-0 "
                                  "report of each model is linked.")
    return summary
