"""`neurovox evaluate`: score a trained decoding run on held-out trials, with chance and ceiling.

    result = evaluate_run("runs/resnet", "data/sim.h5", out_dir="runs/resnet/eval", seed=0)

`evaluate_run` loads the run's decoder, prepares the data with the run's preprocessing config and
training normaliser, builds the test windows, and hands them to `evaluate_test_set`, which decodes,
scores (metrics, bootstrap CIs, chance levels, ceiling) and writes one self-contained folder:

    OUT/metrics.json   metrics, chance, no-neural baselines, gains over them, seen/unseen words,
                       ceiling, per-trial values, config, data hash, versions, seed
    OUT/audio/         trialNN_decoded.wav, trialNN_reference.wav, trialNN_onset_mean.wav, ... (16 kHz)
    OUT/report.html    + OUT/figures/*.png (see neurovox.report)

The folder is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from neurovox import __version__, dsp
from neurovox.errors import DataError, RunError
from neurovox.evaluate.baselines import BASELINE_INFO, baseline_windows, seen_words
from neurovox.evaluate.chance import (
    METRIC_INFO,
    TestSet,
    TrialDecoder,
    by_word,
    ceiling,
    chance_levels,
    gains,
    no_neural_baselines,
    score_trials,
    summarize,
    summarize_trials,
    windows_from_series,
)
from neurovox.decode import DECODER_KINDS, load_decoder
from neurovox.io.audio import playable
from neurovox.preprocess.splits import train_speech_mean_db
from neurovox.runs import git_hash, open_run
from neurovox.utils.files import atomic_path, sha256_file, write_json_atomic


def evaluate_test_set(decoder: TrialDecoder, test: TestSet, out_dir: str | Path, *, seed: int = 0,
                      resynthesize: Any = None, ceiling_note: str = "", meta: dict[str, Any] | None = None,
                      logs_dir: str | Path | None = None, n_boot: int = 2000, n_chance_repeats: int = 1,
                      title: str = "neurovox evaluation", write_report: bool = True,
                      max_trial_figures: int = 12) -> dict[str, Any]:
    """Decode `test`, score it against chance and ceiling, and write metrics.json, WAVs and report.

    Parameters
    ----------
    decoder : TrialDecoder
        Anything with ``decode(neural_windows (n, n_lead + n_target, n_channels), generator) -> dict``
        of ``mel_db`` (n, n_target, n_mels), ``audio`` (n, n_target * 128) and optionally
        ``params`` (n, n_target, 18), and ``synthesis``: "formant" when its output is rendered by the
        formant speech model (the resynthesis ceiling then bounds it), else what renders it.
    test : TestSet
    out_dir : path
        Output folder (replaced atomically).
    seed : int
        Seeds the bootstrap, the chance draws and the decoder's generator.
    resynthesize : callable, optional
        Speech-autoencoder resynthesis for the ceiling (see `chance.ceiling`); None: no ceiling,
        and `ceiling_note` says why.
    meta : dict, optional
        Extra provenance stored in metrics.json (run, data, config).
    logs_dir : path, optional
        The run's TensorBoard logs (or folder with metrics.csv) for the training curves.
    max_trial_figures : int
        Trials shown with spectrogram figures in the report (all trials get WAVs and metrics).

    Returns
    -------
    dict
        The content of metrics.json.
    """
    import torch

    rng = np.random.default_rng(seed)
    decode_gen = torch.Generator().manual_seed(seed)
    decoded = decoder.decode(np.ascontiguousarray(test.neural_windows, dtype=np.float32), generator=decode_gen)
    _check_decoded(decoded, test)
    scores = score_trials(test, decoded)
    summary = summarize(scores, rng, n_boot)
    chance = chance_levels(decoder, test, rng, decode_generator=decode_gen, n_repeats=n_chance_repeats, n_boot=n_boot)
    base = no_neural_baselines(test, rng, n_boot=n_boot)
    base_per_trial = {name: b["per_trial"] for name, b in base.items()}
    chance_per_trial = {f"chance_{name}": c["per_trial"] for name, c in chance.items()}
    ceil = None
    if resynthesize is not None and decoder.synthesis != "formant":
        # The formant speech model's resynthesis bounds only decoders whose output goes through it.
        ceiling_note = (f"not shown: this decoder's output does not go through the formant speech model "
                        f"({decoder.synthesis}), so its resynthesis is no bound for it")
    elif resynthesize is not None:
        ceil = ceiling(resynthesize, test, rng, n_boot=n_boot)
        ceiling_note = ceiling_note or "formant speech model's resynthesis of the reference audio (the formant path's ceiling)"
    # positive = the decoder is better; "above" = its paired-bootstrap CI excludes 0
    gain = gains(scores["per_trial"], {**base_per_trial, **chance_per_trial}, rng, n_boot)
    word_groups = by_word(test, scores["per_trial"], base_per_trial,
                          chance["shuffled"]["per_trial"] if "shuffled" in chance else None, rng, n_boot)
    asr_section, reference_words = _asr_section(test, scores, ceil, rng, n_boot)
    result: dict[str, Any] = {
        "title": title,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "neurovox_version": __version__,
        "git_hash": git_hash(),
        "seed": seed,
        **(meta or {}),
        "n_trials": test.n_trials,
        "synthesis": decoder.synthesis,
        "metric_info": {k: {"label": v[0], "description": v[1], "higher_is_better": v[2]} for k, v in METRIC_INFO.items()},
        "metrics": summary,
        "chance": {name: c["summary"] for name, c in chance.items()},
        "chance_draws": {name: c["draws"] for name, c in chance.items()},
        "baselines": {name: b["summary"] for name, b in base.items()},
        "baseline_info": {name: {"label": v[0], "description": v[1]} for name, v in BASELINE_INFO.items() if name in base},
        "gain": gain,
        "by_word": word_groups,
        "ceiling": ceil["summary"] if ceil else None,
        "ceiling_note": ceiling_note or "no speech model given: ceiling not computed",
        "pcc_per_bin": scores["pcc_per_bin"],
        "asr": asr_section,
        "per_trial": {
            "decoded": scores["per_trial"],
            **chance_per_trial,
            **{f"baseline_{name}": v for name, v in base_per_trial.items()},
            **({"ceiling": ceil["per_trial"]} if ceil else {}),
        },
        "trials": [],
    }
    out_dir = Path(out_dir)
    with atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        extra = {name: b["decoded"]["audio"] for name, b in base.items()}
        if ceil:
            extra["resynthesis"] = ceil["decoded"]["audio"]
        result["trials"] = _write_wavs(tmp / "audio", test, decoded, extra)
        for row, words in zip(result["trials"], scores["recognized"] or []):
            row["asr_decoded"] = words
        for row, words in zip(result["trials"], reference_words or []):
            row["asr_reference"] = words
        result = _json_clean(result)
        write_json_atomic(tmp / "metrics.json", result)
        if write_report:
            from neurovox.report import write_report as _write_report

            _write_report(tmp, result, test, decoded, logs_dir=logs_dir,
                          ceiling_decoded=ceil["decoded"] if ceil else None, max_trial_figures=max_trial_figures)
    return result


def _asr_section(test: TestSet, scores: dict[str, Any], ceil: dict[str, Any] | None, rng: np.random.Generator,
                 n_boot: int) -> tuple[dict[str, Any], list[list[str]] | None]:
    """What the word recogniser says: whether it applies (else why not), the vocabulary and its chance
    (1 / V), and its accuracy on the reference audio (the recogniser's own ceiling) and on the speech model's
    resynthesis when there is one. The decoded, chance and no-neural accuracies are ordinary metrics.
    Returns (the metrics.json section, the reference audio's recognised words per trial or None)."""
    if not test.vocabulary:
        return {"applies": False, "note": test.asr_note}, None
    from neurovox.evaluate.asr import TOP_K, confusion_counts, recognizer_for, word_accuracy

    recognizer = recognizer_for(tuple(test.vocabulary))
    ref_words = recognizer.recognize(np.asarray(test.audio, dtype=np.float64))
    reference = {"asr_word": word_accuracy(ref_words, test.labels, 1),
                 "asr_top3": word_accuracy(ref_words, test.labels, TOP_K)}
    out: dict[str, Any] = {
        "applies": True, "recognizer": "PocketSphinx en-US (shipped acoustic model + CMU dictionary), JSGF "
                                       "grammar of one word of the vocabulary", "vocabulary": list(test.vocabulary),
        "vocabulary_size": len(test.vocabulary), "chance_uniform": 1.0 / len(test.vocabulary), "top_k": TOP_K,
        "chance_uniform_top_k": min(1.0, TOP_K / len(test.vocabulary)),
        "reference": summarize_trials(reference, rng, n_boot), "reference_per_trial": reference,
        # spoken word (row) x recognised word (column; the last = nothing), for the report's confusion matrices
        "confusion": {"words": list(test.vocabulary),
                      "decoded": confusion_counts(scores["recognized"], test.labels, test.vocabulary)[0],
                      "reference": confusion_counts(ref_words, test.labels, test.vocabulary)[0]}}
    if ceil is not None and "asr_word" in ceil["summary"]:
        out["resynthesis"] = {m: ceil["summary"][m] for m in ("asr_word", "asr_top3")}
    return out, ref_words


def _check_decoded(decoded: Any, test: TestSet) -> None:
    if not isinstance(decoded, dict) or "mel_db" not in decoded or "audio" not in decoded:
        raise DataError("decoder.decode must return a dict with 'mel_db' and 'audio' (docs/architecture.md, "
                        f"TrialDecoder); got {type(decoded).__name__} with keys {list(getattr(decoded, 'keys', lambda: [])())}.")
    for key in ("mel_db", "audio"):
        if not np.all(np.isfinite(decoded[key])):
            raise DataError(f"Decoded {key} contains NaN/Inf: the decoder diverged. Check its training logs.")


def _write_wavs(folder: Path, test: TestSet, decoded: dict[str, np.ndarray],
                extra: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """trialNNN_{decoded,reference,<extra name>}.wav per trial; extra: {name: audio (n_trials, n_samples)}."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(test.n_trials):
        row: dict[str, Any] = {"index": i, "trial": int(test.trials[i]), "label": str(test.labels[i]),
                               "seen_word": None if test.seen is None else test.seen[i]}
        pairs = [("decoded", decoded["audio"][i]), ("reference", test.audio[i])]
        pairs += [(name, audio[i]) for name, audio in extra.items()]
        for name, wave in pairs:
            rel = f"audio/trial{i:03d}_{name}.wav"
            sf.write(folder.parent / rel, playable(wave), dsp.SAMPLE_RATE_HZ, subtype="PCM_16")
            row[f"wav_{name}"] = rel
        rows.append(row)
    return rows


def _json_clean(obj: Any) -> Any:
    """Arrays to lists, NaN/Inf to None (strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): _json_clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _json_clean(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


# Loading a real run --------------------------------------------------------------------------------

def check_data_hash(run_dir: str | Path, data_path: str | Path, allow_other_data: bool = False) -> dict[str, Any]:
    """Compare FILE's SHA-256 with the hash the run was trained on; refuse a mismatch unless allowed."""
    run = open_run(run_dir, expect_kind=DECODER_KINDS)
    data_path = Path(data_path)
    if not data_path.exists():
        raise DataError(f"Data file {str(data_path)!r} does not exist. Pass the file the run was trained on.")
    sha = sha256_file(data_path)
    trained = run.meta.get("data_sha256")
    if trained is None and not allow_other_data:  # nothing to compare with is not a match
        raise RunError(f"Run {str(run.path)!r} does not record the data file it was trained on (no data_sha256 in "
                       "run.json), so its test trials cannot be told apart from training data. Retrain it, or pass "
                       "--allow-other-data to evaluate anyway (recorded in metrics.json).")
    if trained != sha and not allow_other_data:
        raise RunError(
            f"Run {str(run.path)!r} was trained on data with SHA-256 {trained[:12]}... "
            f"({run.meta.get('data_path', '?')}), but {str(data_path)!r} has {sha[:12]}.... Test trials of "
            "another file may overlap the training data. Pass the training file, or --allow-other-data to "
            "evaluate anyway (recorded in metrics.json)."
        )
    return {"path": str(data_path.resolve()), "sha256": sha, "trained_on_sha256": trained,
            "trained_on_path": run.meta.get("data_path"), "matches_training_data": bool(trained == sha),
            "allow_other_data": bool(allow_other_data)}


def build_test_set(decoder: TrialDecoder, run_config: dict[str, Any], data_path: str | Path, seed: int = 0,
                   cache_dir: Path | None = None) -> TestSet:
    """Prepare FILE with the run's prepare config, normalise with its training normaliser, cut test windows.

    The split is rebuilt from the run's ``split`` section exactly as training made it, so the test
    trials are the ones training never saw.
    """
    import torch

    from neurovox.io import read_recording
    from neurovox.preprocess import WindowDataset, prepare
    from neurovox.preprocess.splits import split_from_config

    rec = read_recording(data_path)
    prepared = prepare(rec, decoder.prepare_config, cache_dir)
    split = split_from_config(prepared, run_config.get("split"), n_target_frames=decoder.n_target_frames,
                              n_lead_frames=decoder.n_lead_frames)
    scheme = split.scheme
    dataset = WindowDataset(prepared, split, decoder.normalizer, part="test",
                            n_target_frames=decoder.n_target_frames, n_lead_frames=decoder.n_lead_frames,
                            generator=torch.Generator().manual_seed(seed))
    items = [dataset[i] for i in range(len(dataset))]
    if len(items) < 2:
        raise DataError(f"The {scheme!r} split of {str(data_path)!r} has {len(items)} test trial(s); "
                        "evaluation needs at least 2 (for the chance levels).")

    def stack(key: str) -> np.ndarray:
        return np.stack([np.asarray(it[key]) for it in items])

    series = np.asarray(decoder.normalizer.transform(prepared.neural), dtype=np.float32)
    windows = stack("neural").astype(np.float32)
    starts = np.array([int(it["start_frame"]) for it in items])
    n_window = windows.shape[1]
    # `start_frame` is the first target frame; the neural window starts n_lead frames earlier. Check it.
    for candidate in (starts - decoder.n_lead_frames, starts):
        if np.allclose(windows_from_series(series, candidate, n_window), windows, atol=1e-4):
            starts = candidate
            break
    else:
        series = None  # the windows cannot be reproduced from the series: no circular-shift control
    trials = np.array([int(it["trial"]) for it in items])
    # SWPD test windows tile the test span and belong to no trial (trial -1): no word label
    labels = [str(prepared.trials["label"].iloc[t]) if t >= 0 else "" for t in trials]
    target_starts = np.array([int(it["start_frame"]) for it in items])
    vocabulary, asr_note = asr_vocabulary(rec.meta.language, prepared.trials["label"], labels)
    return TestSet(neural_windows=windows, mel_db=stack("mel_db").astype(np.float32), audio=stack("audio"),
                   speech_mask=stack("speech_mask").astype(bool), n_lead_frames=decoder.n_lead_frames,
                   start_frames=starts, neural_series=series, trials=trials, labels=labels,
                   f0_hz=stack("f0_hz") if "f0_hz" in items[0] else None,
                   formants_hz=stack("formants_hz") if "formants_hz" in items[0] else None,
                   train_mel_mean_db=train_speech_mean_db(prepared, split),
                   baselines=baseline_windows(prepared, split, target_starts),
                   seen=seen_words(prepared, split, trials), vocabulary=vocabulary, asr_note=asr_note)


def asr_vocabulary(language: str, recording_labels: Any, test_labels: list[str]) -> tuple[tuple[str, ...], str]:
    """(the recording's word list, "") when the word recogniser applies to these test trials, else ((), why not)."""
    from neurovox.evaluate.asr import asr_applicability, normalize_word

    if any(not normalize_word(lab) for lab in test_labels):
        return (), "not applicable: these test windows belong to no word (continuous SWPD tiles)"
    vocabulary = tuple(sorted({normalize_word(w) for w in recording_labels if normalize_word(w)}))
    reason = asr_applicability(language, vocabulary)
    return ((), reason) if reason else (vocabulary, "")


def find_speech_run(run_config: dict[str, Any], run_meta: dict[str, Any]) -> str | None:
    """The speech run a decoder was trained against (a config or run.json entry named *speech_run*)."""
    for key, value in run_meta.items():
        if "speech_run" in key and isinstance(value, str):
            return value
    stack = [run_config]
    while stack:
        node = stack.pop()
        for key, value in node.items():
            if isinstance(value, dict):
                stack.append(value)
            elif "speech_run" in key and isinstance(value, str) and value:
                return value
    return None


def speech_resynthesizer(speech_run: str | Path, seed: int = 0, batch_size: int = 16):
    """Resynthesis of a speech run: its frozen encoder (power spectrogram -> raw controls), then its synthesizer.

    Returns a callable: reference audio (n, n_samples) -> {"audio", "mel_db"}; the synthesizer's noise is
    drawn from one generator seeded with `seed`, so the ceiling is reproducible.
    """
    import torch

    from neurovox.encoder import load_speech_model

    encoder, synth = load_speech_model(speech_run)

    @torch.no_grad()
    def resynthesize(audio: np.ndarray) -> dict[str, np.ndarray]:
        gen = torch.Generator().manual_seed(seed)
        waves, mels = [], []
        for i in range(0, len(audio), batch_size):
            wave = torch.from_numpy(np.ascontiguousarray(audio[i:i + batch_size], dtype=np.float32))
            out = synth(encoder(dsp.stft_power(wave)), generator=gen)
            waves.append(out.wave.cpu().numpy())
            mels.append(dsp.power_to_db(dsp.power_to_mel(out.spec_power)).cpu().numpy())
        return {"audio": np.concatenate(waves), "mel_db": np.concatenate(mels)}

    return resynthesize


def evaluate_run(run_dir: str | Path, data_path: str | Path, out_dir: str | Path | None = None, seed: int = 0, *,
                 allow_other_data: bool = False, speech_run: str | Path | None = None, n_boot: int = 2000,
                 n_chance_repeats: int = 1, cache_dir: str | Path | None = None) -> dict[str, Any]:
    """Evaluate a finished decoding run (kind "decoder" or "dps") on the test trials of `data_path`.

    Returns the metrics.json content; writes it with WAVs and report.html to `out_dir`
    (default RUN/eval). See the module docstring.
    """
    run = open_run(run_dir, expect_kind=DECODER_KINDS, require_done=True)
    data_meta = check_data_hash(run_dir, data_path, allow_other_data)
    out_dir = Path(out_dir) if out_dir is not None else run.path / "eval"
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / "metrics.json").exists():
        raise RunError(f"{str(out_dir)!r} exists and is not an evaluation folder; choose another --out.")
    speech = speech_run if speech_run is not None else find_speech_run(run.config, run.meta)
    # No test audio in anything behind the scores (issue #14): the speech run of the ceiling, a dps run's prior,
    # likelihood run and warm start must not have trained on these test trials; RunError before anything is
    # written or loaded.
    from neurovox.preprocess.leakage import check_evaluation

    check_evaluation(run, data_path, speech_run=speech, allow_other_data=allow_other_data, cache_dir=cache_dir)
    decoder = load_decoder(run.path)
    test = build_test_set(decoder, run.config, data_path, seed, Path(cache_dir) if cache_dir else None)
    resynth, note = None, ""
    if speech is None:
        note = "no speech run recorded for this decoder (pass --speech RUN): ceiling not computed"
    else:  # a speech run that cannot be loaded is an error, never a silently missing ceiling
        resynth = speech_resynthesizer(speech, seed)
    meta = {"run": {"path": str(run.path.resolve()), "kind": run.kind, "seed": run.meta.get("seed"),
                    "git_hash": run.meta.get("git_hash")},
            "config": run.config, "data": data_meta, "speech_run": str(speech) if speech else None}
    return evaluate_test_set(decoder, test, out_dir, seed=seed, resynthesize=resynth, ceiling_note=note, meta=meta,
                             logs_dir=run.path / "logs", n_boot=n_boot, n_chance_repeats=n_chance_repeats,
                             title=f"neurovox evaluation: {run.path.name}")
