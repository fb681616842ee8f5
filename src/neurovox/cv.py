"""`neurovox cv`: cross-validate one or several decoders, fold by fold, resumable.

    run_cv("data/sim.h5", speech_run="runs/speech", models=["lstm", "resnet", "linear"],
           out_dir="runs/cv", split="kfold", n_folds=10)

No fold is scored through a speech model that heard its test trials: a given ``speech_run`` is checked
against every fold's test trials before anything is written (`neurovox.preprocess.leakage`), which
only a flinker split with a flinker speech run passes; with ``train_speech=True`` one speech model per
fold is trained on that fold's training trials into ``OUT/speech/fold<k>/`` (resumable like the folds).

Each (model, fold) is an independent job in ``OUT/<model>/fold<k>/``: train the decoder into
``run/``, evaluate it into ``eval/``, then write ``DONE`` (with the fold's summary). A fold with
``DONE`` is never recomputed, so an interrupted cross-validation resumes where it stopped. The
folds are aggregated into ``OUT/cv_summary.json`` (mean and SEM across folds of every metric,
its chance levels and the ceiling) and one comparison report ``OUT/report.html``.
"""

from __future__ import annotations

import functools
import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from neurovox.errors import ConfigError
from neurovox.preprocess.splits import SplitConfig
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
    # a causal decoder prepares raw voltage causally, as `neurovox train decoder --causal` does
    flags = [f"decoder.model={model}", f"decoder.causal={'true' if causal else 'false'}"] + \
            (["prepare.causal=true"] if causal else []) + [f"split.scheme={split}",
             f"split.fold={fold}", f"split.n_folds={n_folds}", f"seed={seed}"]
    cfg = load_config(DecoderRunConfig, config_path, flags + list(overrides), base=quick_settings(model) if quick else None)
    torch.manual_seed(cfg.seed)  # cv is a CLI-level driver: it seeds each fold's training like the CLI does
    uses_speech = model != "linear" and cfg.decoder.target == "formant"  # the mel target needs no speech model
    return Path(train_decoder(data_path, run_dir, cfg, speech_run=speech_run if uses_speech else None, progress=False,
                              cache_dir=Path(cache_dir) if cache_dir else None))


def train_fold_speech(*, fold: int, n_folds: int, split: str, data_path: Path, run_dir: Path, seed: int,
                      quick: bool, overrides: Sequence[str] = ()) -> Path:
    """The speech model of one fold, trained on the fold's training trials only (reused when finished)."""
    import lightning

    from neurovox.config import load_config
    from neurovox.encoder.train import QUICK_OVERRIDES, SpeechRunConfig, train_speech_run
    from neurovox.runs import open_run

    if (run_dir / "DONE").exists():
        open_run(run_dir, expect_kind="speech", require_done=True)
        return run_dir
    flags = [f"split.scheme={split}", f"split.fold={fold}", f"split.n_folds={n_folds}", f"seed={seed}"]
    cfg = load_config(SpeechRunConfig, None, flags + list(overrides), base=QUICK_OVERRIDES if quick else None)
    lightning.seed_everything(cfg.seed, workers=True, verbose=False)  # cv is a CLI-level driver, like `train speech`
    train_speech_run(data_path, run_dir, cfg, progress=False)
    return run_dir


def check_speech_for_folds(speech_run: Path, data_path: Path, *, split: str, n_folds: int, folds: Sequence[int],
                           overrides: Sequence[str] = (), config_path: str | Path | None = None,
                           cache_dir: str | Path | None = None) -> None:
    """Refuse a speech run that trained on the test trials of any fold (before anything is written)."""
    from neurovox.config import load_config
    from neurovox.decoders.train import DecoderRunConfig, prepare_data
    from neurovox.errors import RunError
    from neurovox.preprocess.leakage import audio_sha256, check_speech_run

    prepared = None
    for fold in folds:
        flags = [f"split.scheme={split}", f"split.fold={fold}", f"split.n_folds={n_folds}"]
        cfg = load_config(DecoderRunConfig, config_path, flags + list(overrides))
        prepared, fold_split, _ = prepare_data(data_path, cfg, Path(cache_dir) if cache_dir else None)
        sha = audio_sha256(prepared.audio, prepared.trials)
        try:
            check_speech_run(speech_run, prepared, fold_split, data=data_path, seed=cfg.split.seed, audio_sha=sha)
        except RunError as exc:
            raise RunError(f"cross-validation fold {fold}: {exc} Or let cv train one speech model per fold "
                           "(--train-speech).") from None


def default_evaluate(run_dir: Path, data_path: Path, out_dir: Path, seed: int, speech_run: Path | None,
                     cache_dir: str | Path | None = None) -> dict[str, Any]:
    from neurovox.evaluate.evaluate import evaluate_run

    return evaluate_run(run_dir, data_path, out_dir, seed, speech_run=speech_run, cache_dir=cache_dir)


POOLED = ("decoded", "baseline_onset_mean", "baseline_constant_spectrum")


def _fold_summary(result: dict[str, Any]) -> dict[str, Any]:
    """What a fold's DONE keeps: summaries, and the per-trial scores that the pooled gains need."""
    per_trial = result.get("per_trial") or {}
    return {"metrics": result.get("metrics"), "chance": result.get("chance"), "ceiling": result.get("ceiling"),
            "baselines": result.get("baselines"), "gain": result.get("gain"),
            "per_trial": {k: per_trial[k] for k in POOLED if k in per_trial},
            "seen": [row.get("seen_word") for row in result.get("trials") or []],
            "words": [row.get("label") for row in result.get("trials") or []]}


def pooled_gains(folds: list[dict[str, Any]], seed: int = 0, n_boot: int = 2000) -> dict[str, Any]:
    """Decoder vs no-neural baselines over the test trials of all folds together (each tested once).

    Returns
    -------
    dict
        ``gain`` {baseline: {metric: paired_gain}} over all trials, and ``by_word`` {"seen"|"unseen":
        {"n_trials", "words", "metrics", "baselines", "gain"}} as in metrics.json; empty when a fold
        predates per-trial scores in its DONE file.
    """
    from neurovox.evaluate.chance import gains, summarize_trials

    if not folds or any(not f.get("per_trial") or "decoded" not in f["per_trial"] for f in folds):
        return {}
    rng = np.random.default_rng(seed)
    keys = [k for k in POOLED if all(k in f["per_trial"] for f in folds)]
    cat = {k: {m: np.concatenate([np.asarray(f["per_trial"][k][m], dtype=float) for f in folds])
               for m in folds[0]["per_trial"][k]} for k in keys}
    bases = {k.removeprefix("baseline_"): cat[k] for k in keys if k != "decoded"}
    seen = [s for f in folds for s in f.get("seen") or []]
    words = [w for f in folds for w in f.get("words") or []]
    out: dict[str, Any] = {"gain": gains(cat["decoded"], bases, rng, n_boot), "by_word": {}}
    if len(seen) == len(cat["decoded"]["pcc"]) and any(s is not None for s in seen):
        for group, flag in (("seen", True), ("unseen", False)):
            idx = np.flatnonzero([s is flag for s in seen])
            entry: dict[str, Any] = {"n_trials": int(len(idx)), "words": sorted({str(words[i]) for i in idx})}
            if len(idx) >= 2:
                pick = lambda d: {m: v[idx] for m, v in d.items()}  # noqa: E731
                entry["metrics"] = summarize_trials(pick(cat["decoded"]), rng, n_boot)
                entry["baselines"] = {b: summarize_trials(pick(v), rng, n_boot) for b, v in bases.items()}
                entry["gain"] = gains(pick(cat["decoded"]), {b: pick(v) for b, v in bases.items()}, rng, n_boot)
            out["by_word"][group] = entry
    return out


def folds_of_split(split: str, n_folds: int, data_path: str | Path) -> int:
    """How many folds `split` has on this recording: flinker 1, lowo one per word, kfold / swpd `n_folds`."""
    if split == "lowo":  # one fold per word (sorted labels, as make_split numbers them); --folds does not apply
        from neurovox.io import read_recording

        return int(read_recording(data_path).trials["label"].astype(str).nunique())
    return 1 if split == "flinker" else n_folds


def run_fold(model: str, fold: int, fold_dir: Path, *, train_fn: TrainFn, evaluate_fn: EvalFn,
             data_path: Path, speech_run: Path | None, seed: int, **train_kw: Any) -> dict[str, Any]:
    """Train + evaluate one fold unless its DONE file exists; returns the fold summary."""
    done = fold_dir / "DONE"
    if done.exists():
        return json.loads(done.read_text())
    fold_dir.mkdir(parents=True, exist_ok=True)
    run_dir = train_fn(model=model, fold=fold, data_path=data_path, speech_run=speech_run,
                       run_dir=fold_dir / "run", seed=seed, **train_kw)
    if (fold_dir / "eval").exists():  # an evaluation cut short (no DONE yet) is redone from the finished run
        shutil.rmtree(fold_dir / "eval")
    result = evaluate_fn(Path(run_dir), data_path, fold_dir / "eval", seed, speech_run)
    summary = {"model": model, "fold": fold, **_fold_summary(result),
               "report": str((fold_dir / "eval" / "report.html").resolve())}
    write_json_atomic(done, summary)
    return summary


def aggregate_folds(folds: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and SEM across folds of each fold's mean, for metrics, chance levels and ceiling."""
    from neurovox.report.tables import ceiling_of

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
    base_kinds = sorted({k for f in folds for k in (f.get("baselines") or {})})
    return {"metrics": agg(lambda f: f.get("metrics")),
            "chance": {k: agg(lambda f, k=k: (f.get("chance") or {}).get(k)) for k in chance_kinds},
            "baselines": {k: agg(lambda f, k=k: (f.get("baselines") or {}).get(k)) for k in base_kinds},
            "ceiling": agg(ceiling_of),  # formant resynthesis; for ASR accuracy the reference audio
            "n_folds": len(folds), **pooled_gains(folds)}


def run_cv(data_path: str | Path, models: Sequence[str], out_dir: str | Path, *, speech_run: str | Path | None = None,
           causal: bool = False, split: str = "kfold", n_folds: int = SplitConfig.n_folds, seed: int = 0, quick: bool = False,
           overrides: Sequence[str] = (), config_path: str | Path | None = None,
           cache_dir: str | Path | None = None, train_fn: TrainFn | None = None,
           evaluate_fn: EvalFn | None = None, progress: bool = True, train_speech: bool = False,
           speech_overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Cross-validate `models` on `data_path`; see the module docstring. Returns cv_summary.json's content.

    train_speech : bool
        Train one speech model per fold on its training trials (OUT/speech/fold<k>/), with `speech_overrides`
        (``["speech.max_steps=700"]``; --quick gives the quick speech settings); excludes `speech_run`.
    """
    check_option("split", split, SPLITS)
    if not models:
        raise ConfigError("run_cv needs at least one model (e.g. --models lstm,resnet,linear).")
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
    if train_speech and speech_run:
        raise ConfigError("pass either a speech run (--speech) or --train-speech (one speech model per fold), not both.")
    n_split_folds = folds_of_split(split, n_folds, data_path)
    if speech_run:   # refuse before anything is written
        check_speech_for_folds(Path(speech_run), data_path, split=split, n_folds=n_folds,
                               folds=range(n_split_folds), overrides=overrides, config_path=config_path,
                               cache_dir=cache_dir)
    jobs = [(m, k) for m in models for k in range(n_split_folds)]
    n_done = sum((out_dir / m / f"fold{k}" / "DONE").exists() for m, k in jobs)
    if progress:
        print(f"neurovox cv: {len(models)} model(s) x {n_split_folds} fold(s) = {len(jobs)} jobs "
              f"({n_done} already done) in {out_dir}")
    from tqdm.auto import tqdm

    results: dict[str, list[dict[str, Any]]] = {m: [] for m in models}
    fold_speech: dict[int, Path] = {}
    for model, fold in tqdm(jobs, desc="cv folds", disable=not progress):
        speech = Path(speech_run) if speech_run else None
        if train_speech and not (out_dir / model / f"fold{fold}" / "DONE").exists():
            if fold not in fold_speech:
                fold_speech[fold] = train_fold_speech(fold=fold, n_folds=n_folds, split=split, data_path=data_path,
                                                      run_dir=out_dir / "speech" / f"fold{fold}", seed=seed,
                                                      quick=quick, overrides=speech_overrides)
            speech = fold_speech[fold]
        results[model].append(run_fold(
            model, fold, out_dir / model / f"fold{fold}", train_fn=train_fn, evaluate_fn=evaluate_fn,
            data_path=data_path, speech_run=speech, seed=seed,
            n_folds=n_folds, split=split, causal=causal, quick=quick, overrides=tuple(overrides)))
    summary = {"data": str(data_path.resolve()), "split": split, "n_folds": n_split_folds, "causal": causal,
               "seed": seed, "models": {m: {**aggregate_folds(results[m]), "folds": results[m]} for m in models}}
    write_json_atomic(out_dir / "cv_summary.json", summary)
    from neurovox.report import write_comparison_report

    entries = [{"name": f"{m}{' (causal)' if causal else ''}", **{k: summary["models"][m].get(k)
                for k in ("metrics", "chance", "baselines", "gain", "by_word", "ceiling")}, "n_folds": n_split_folds,
                "report": results[m][0].get("report")} for m in models]
    write_comparison_report(entries, out_dir, title=f"neurovox cross-validation ({split}, {n_split_folds} folds)",
                            notes="Mean and SEM across folds of each fold's mean over its test trials; the gain over "
                                  "the no-neural baseline and the seen/unseen split pool the test trials of all folds "
                                  "(paired bootstrap over trials). With --split lowo every test word is unseen in its "
                                  "fold's training. The fold-0 report of each model is linked.")
    from neurovox.report.tables import text_table

    if progress:
        print("\n" + text_table(entries))
    return summary
