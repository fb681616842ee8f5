"""No test audio in any training set: what a run trained on, and the check that refuses an overlap.

Every run that learns from a recording records its *training sources* in run.json under
``"training_data"`` (`record_training_data`): a list of dicts, one per source,

    {"kind": "recording", "path": ..., "file_sha256": ..., "audio_sha256": ..., "participant_id": ...,
     "n_trials": 60, "split": {"scheme": "kfold", "fold": 2, "n_folds": 5, "seed": 0},
     "train_trials": [...], "val_trials": [...], "test_trials": [...], "trained_trials": [...]}
    {"kind": "corpus", "voices": ["flite_awb", ...]}            # the shipped multi-voice corpus (priors)
    {"kind": "audio", "path": ..., "file_sha256": ...}          # a plain audio file (priors)

``trained_trials`` is every trial outside the source's test set. It is deliberately wider than
``train_trials``: training windows, input statistics and noise spectra may read any frame outside the
test trials' extents, including those of trials that were not picked for training (too close to a test
trial) and of validation trials (model selection). A consumer's test trials must avoid all of them.

`check_trained_apart` compares those records with the test trials of the run being made (or
evaluated) and raises a one-line `RunError` naming the overlapping trials, both runs and what to
retrain. The trial indices are rows of the recording's trial table; a source matches the recording
under test when its file SHA-256 or its *audio identity* (`audio_sha256`: the 16 kHz audio and the trial
table, which is all a speech model or a prior learns from) is the same, so a speech model trained on
one simulated participant's audio serves another file with the same audio (another layout or SNR).

Simulated participants speak utterances of the shipped corpus, so a prior trained on the corpus has
heard the participant's voice unless that voice was excluded (`prior.exclude_voices`):
`simulated_voice` reads the voice from what the simulator saves with the recording.

The checks run before any run directory is made, so a refusal leaves nothing behind (CLI: exit 2).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from neurovox.errors import RunError

TRAINING_KEY = "training_data"
_MAX_LISTED = 5


# Identities -----------------------------------------------------------------------------------------

def audio_sha256(audio: np.ndarray, trials: Any) -> str:
    """Identity of what a speech model or prior hears of a recording: the 16 kHz audio (float32 bytes) and
    the trial table (onset/offset frames, labels), so that equal hashes mean the same trial rows too."""
    h = hashlib.sha256()
    a = np.ascontiguousarray(np.asarray(audio, dtype=np.float32))
    h.update(str(a.shape).encode())
    h.update(a.tobytes())
    cols = [c for c in ("onset_frame", "offset_frame", "label") if c in trials]
    h.update(trials[cols].to_csv(index=False).encode())
    return h.hexdigest()


def split_dict(split: Any, seed: int | None = None) -> dict[str, Any]:
    return {"scheme": split.scheme, "fold": int(split.fold), "n_folds": int(split.n_folds),
            **({"seed": int(seed)} if seed is not None else {})}


def recording_source(prepared: Any, split: Any, *, path: str | Path | None = None,
                     seed: int | None = None) -> dict[str, Any]:
    """The training-source record of a Prepared recording used under `split` (see the module docstring)."""
    n = len(prepared.trials)
    test = np.asarray(split.test_trials, dtype=np.int64)
    return {"kind": "recording", "path": str(Path(path).resolve()) if path else (prepared.meta.source_path or None),
            "file_sha256": prepared.source_sha256, "audio_sha256": audio_sha256(prepared.audio, prepared.trials),
            "participant_id": prepared.meta.participant_id, "n_trials": n, "split": split_dict(split, seed),
            "train_trials": _ints(split.train_trials), "val_trials": _ints(split.val_trials),
            "test_trials": _ints(test), "trained_trials": _ints(np.setdiff1d(np.arange(n), test))}


def _ints(a: Any) -> list[int]:
    return [int(x) for x in np.asarray(a, dtype=np.int64).ravel()]


# Reading and writing the records -------------------------------------------------------------------

def record_training_data(run: Any, sources: list[dict[str, Any]]) -> None:
    """Add ``"training_data": sources`` to RUN/run.json (atomically) and to `run.meta`."""
    from neurovox.utils.files import write_json_atomic

    meta = json.loads((Path(run.path) / "run.json").read_text())
    meta[TRAINING_KEY] = sources
    write_json_atomic(Path(run.path) / "run.json", meta)
    run.meta[TRAINING_KEY] = sources


def training_sources(meta: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The recorded training sources of a run (its run.json), or None for a run that records none."""
    sources = meta.get(TRAINING_KEY)
    return list(sources) if isinstance(sources, list) else None


# The check ------------------------------------------------------------------------------------------

def _trials_text(rows: list[int]) -> str:
    head = ", ".join(str(r) for r in rows[:_MAX_LISTED])
    return f"[{head}{', ...' if len(rows) > _MAX_LISTED else ''}]"


def _split_text(split: dict[str, Any] | None) -> str:
    if not split:
        return "an unknown split"
    if split.get("scheme") == "flinker":
        return "the flinker split"
    return f"the {split.get('scheme')} split fold {split.get('fold')} of {split.get('n_folds')}"


def split_overrides(split: dict[str, Any], prefix: str = "split.") -> str:
    """`--set` flags that reproduce a split, e.g.
    "--set split.scheme=kfold --set split.fold=2 --set split.n_folds=5"."""
    flags = [f"--set {prefix}scheme={split['scheme']}"]
    if split["scheme"] != "flinker":
        flags.append(f"--set {prefix}fold={split['fold']}")
        if split["scheme"] in ("kfold", "swpd"):
            flags.append(f"--set {prefix}n_folds={split['n_folds']}")
    return " ".join(flags)


def matching_sources(sources: list[dict[str, Any]], *, file_sha256: str | None,
                     audio_sha: str | None) -> list[dict[str, Any]]:
    """The recording sources that are the recording under test (same file or same audio and trial table)."""
    out = []
    for s in sources:
        if s.get("kind") != "recording":
            continue
        if (file_sha256 and s.get("file_sha256") == file_sha256) or (audio_sha and s.get("audio_sha256") == audio_sha):
            out.append(s)
    return out


def check_trained_apart(run_path: str | Path, meta: dict[str, Any], *, test_trials: Any, file_sha256: str | None,
                        audio_sha: str | None, data: str, split: dict[str, Any], what: str, retrain: str,
                        same_recording: bool = False) -> None:
    """Refuse a run (`what`, e.g. "speech run") whose recorded training trials include the test trials.

    Parameters
    ----------
    run_path, meta : the producer run's directory and its run.json content.
    test_trials : int array, the consumer's test trial rows of the recording `data`.
    file_sha256, audio_sha : identities of the recording under test (`Prepared.source_sha256`, `audio_sha256`).
    data : how to name the recording in messages (its path).
    split : the consumer's split (`split_dict`).
    retrain : the command-line fix, e.g. "train speech --data FILE --set split.scheme=kfold ...".
    same_recording : the producer must have trained on this recording (speech models: a participant's
        own voice); otherwise other recordings are fine and only this one's test trials are forbidden.
    """
    name = f"{what} {str(run_path)!r}"
    sources = training_sources(meta)
    if sources is None:
        raise RunError(f"The {name} does not record which trials it trained on (made by an older neurovox), so it "
                       f"may have heard the test trials of {data}; retrain it: neurovox {retrain}.")
    mine = matching_sources(sources, file_sha256=file_sha256, audio_sha=audio_sha)
    if same_recording and not mine:
        other = next((s for s in sources if s.get("kind") == "recording"), {})
        raise RunError(f"The {name} was trained on another recording ({other.get('path') or 'in memory'}, participant "
                       f"{other.get('participant_id', '?')}, SHA-256 {str(other.get('file_sha256', '?'))[:12]}...), "
                       f"not on {data}; a speech model must come from this participant's own recording: "
                       f"neurovox {retrain}.")
    test = set(_ints(test_trials))
    for s in mine:
        overlap = sorted(test.intersection(s.get("trained_trials", [])))
        if overlap:
            raise RunError(f"The {name} trained on {len(overlap)} of the {len(test)} test trials of {data} "
                           f"{_trials_text(overlap)}: it used {_split_text(s.get('split'))}, this run tests "
                           f"{_split_text(split)}. Retrain it on this split: neurovox {retrain}.")


# Simulated participants -----------------------------------------------------------------------------

_VOICE_NOTE = re.compile(r"simulated:.*?\bvoice\s+([A-Za-z0-9_.\-]+)")


def simulated_voice(meta: Any, data_path: str | Path | None = None) -> str | None:
    """The shipped-corpus voice a simulated recording speaks, or None when it is not (known to be) simulated.

    Read from what the simulator saves: the note "simulated: voice NAME, ..." in the recording's metadata,
    else a ``ground_truth.json`` / ``simulation.json`` with a "voice" entry beside the file (or up to three
    folders above it, for a BIDS tree inside the simulation folder).
    """
    for note in list(getattr(meta, "notes", None) or []):
        m = _VOICE_NOTE.search(str(note))
        if m:
            return m.group(1).rstrip(",.")
    if data_path is None:
        return None
    folder = Path(data_path).resolve()
    for _ in range(4):
        folder = folder.parent
        for name in ("ground_truth.json", "simulation.json"):
            f = folder / name
            if f.is_file():
                try:
                    voice = json.loads(f.read_text()).get("voice")
                except (OSError, ValueError, AttributeError):
                    voice = None
                if isinstance(voice, str) and voice:
                    return voice
    return None


def looks_simulated(meta: Any) -> bool:
    return str(getattr(meta, "source_format", "")) == "simulated" or any(
        str(n).startswith("simulated") for n in (getattr(meta, "notes", None) or []))


def check_prior_apart(run_path: str | Path, meta: dict[str, Any], *, test_trials: Any, file_sha256: str | None,
                      audio_sha: str | None, data: str, split: dict[str, Any], rec_meta: Any,
                      data_path: str | Path | None = None) -> None:
    """Refuse a prior that heard the test trials of `data`, or, on a simulated participant, its voice."""
    sources = training_sources(meta)
    name = f"prior run {str(run_path)!r}"
    if sources is None:
        raise RunError(f"The {name} does not record what it was trained on (made by an older neurovox), so it may "
                       f"have heard the test trials of {data}; retrain it: neurovox train prior ... --overwrite.")
    voice = simulated_voice(rec_meta, data_path)
    corpus_voices = sorted({v for s in sources if s.get("kind") == "corpus" for v in s.get("voices", [])})
    if voice is not None and voice in corpus_voices:
        raise RunError(f"The {name} was trained on the shipped corpus including voice {voice!r}, the voice that the "
                       f"simulated participant of {data} speaks (the same recorded words), so it has heard its test "
                       f"trials; retrain it without that voice: neurovox train prior --set "
                       f"prior.exclude_voices=[{voice}] ... (or --set prior.use_corpus=false).")
    mine = matching_sources(sources, file_sha256=file_sha256, audio_sha=audio_sha)
    same_voice = [s for s in sources if voice is not None and s.get("kind") == "recording" and s.get("voice") == voice
                  and s not in mine]
    if same_voice:
        raise RunError(f"The {name} was trained on {same_voice[0].get('path')}, another simulated participant speaking "
                       f"voice {voice!r} like {data} (the same recorded words), so it has heard its test trials; "
                       "retrain the prior without that recording: neurovox train prior --speech ... --overwrite.")
    if voice is None and corpus_voices and looks_simulated(rec_meta):
        raise RunError(f"{data} is a simulated participant whose corpus voice is not recorded with it, and the {name} "
                       "was trained on the shipped corpus, which it may speak; retrain the prior without the corpus: "
                       "neurovox train prior --set prior.use_corpus=false --speech ...")
    check_trained_apart(run_path, meta, test_trials=test_trials, file_sha256=file_sha256, audio_sha=audio_sha,
                        data=data, split=split, what="prior run",
                        retrain=f"train prior --speech {data} {split_overrides(split, 'prior.split_')} ... --overwrite")


# Convenience for the stages ----------------------------------------------------------------------

def check_speech_run(speech_run: str | Path, prepared: Any, split: Any, *, data: str | Path | None = None,
                     seed: int | None = None, audio_sha: str | None = None, same_recording: bool = True) -> None:
    """Refuse a speech run that did not train on `prepared`'s recording, or heard `split`'s test trials.

    Used by decoder training, the likelihood stage (a dps run's formant vocoder), cv and evaluation (the
    speech run behind the ceiling); RunError before anything is written.
    """
    from neurovox.runs import open_run

    run = open_run(speech_run, expect_kind="speech")
    data = str(data or prepared.meta.source_path or "this recording")
    sd = split_dict(split, seed)
    check_trained_apart(run.path, run.meta, test_trials=split.test_trials, file_sha256=prepared.source_sha256,
                        audio_sha=audio_sha or audio_sha256(prepared.audio, prepared.trials), data=data, split=sd,
                        what="speech run", same_recording=same_recording,
                        retrain=f"train speech --data {data} {split_overrides(sd)} --out NEW_SPEECH_RUN")


def check_prior_run(prior_run: str | Path, prepared: Any, split: Any, *, data: str | Path | None = None,
                    audio_sha: str | None = None) -> None:
    """Refuse a prior that heard `split`'s test trials of `prepared`'s recording, or its simulated voice."""
    from neurovox.runs import open_run

    run = open_run(prior_run, expect_kind="prior")
    data_s = str(data or prepared.meta.source_path or "this recording")
    check_prior_apart(run.path, run.meta, test_trials=split.test_trials, file_sha256=prepared.source_sha256,
                      audio_sha=audio_sha or audio_sha256(prepared.audio, prepared.trials), data=data_s,
                      split=split_dict(split), rec_meta=prepared.meta, data_path=data)


def _split_of_config(prepared: Any, config: dict[str, Any], *, n_target: int = 128, n_lead: int = 16) -> Any:
    from neurovox.preprocess.splits import split_from_config

    return split_from_config(prepared, config.get("split"), n_target_frames=n_target, n_lead_frames=n_lead)


def check_evaluation(run: Any, data_path: str | Path, *, speech_run: str | Path | None = None,
                     allow_other_data: bool = False, cache_dir: str | Path | None = None) -> None:
    """`neurovox evaluate`: refuse every overlap it can detect between the test trials of `run` (kind decoder
    or dps) on `data_path` and what the runs behind it trained on: the speech run of the ceiling (and of a
    decoder or a formant vocoder), a dps run's prior, likelihood run and warm-start decoder. RunError, before
    anything is written."""
    from neurovox.io import read_recording
    from neurovox.preprocess.prepared import prepare
    from neurovox.runs import open_run

    from neurovox.config import from_dict
    from neurovox.preprocess.config import PrepareConfig

    prepare_config = from_dict(PrepareConfig, run.config.get("prepare", {}) or {}, prefix="prepare.")
    window = run.config.get("decoder") or run.config.get("window") or {}
    n_target, n_lead = int(window.get("n_target_frames", 128)), int(window.get("n_lead_frames", 16))
    rec = read_recording(data_path)
    prepared = prepare(rec, prepare_config, cache_dir)
    split = _split_of_config(prepared, run.config, n_target=n_target, n_lead=n_lead)
    sha = audio_sha256(prepared.audio, prepared.trials)
    data = str(data_path)
    speech_runs = [speech_run] if speech_run else []
    dps = run.config.get("dps", {}) if run.kind == "dps" else {}
    if dps.get("speech_run"):
        speech_runs.append(dps["speech_run"])
    for s in dict.fromkeys(str(x) for x in speech_runs):
        check_speech_run(s, prepared, split, data=data, audio_sha=sha, same_recording=not allow_other_data)
    if not dps:
        return
    if dps.get("prior_run"):
        check_prior_run(dps["prior_run"], prepared, split, data=data, audio_sha=sha)
    if dps.get("likelihood_run"):
        lik = open_run(dps["likelihood_run"], expect_kind="likelihood")
        check_trained_apart(lik.path, lik.meta, test_trials=split.test_trials, file_sha256=prepared.source_sha256,
                            audio_sha=sha, data=data, split=split_dict(split), what="likelihood run",
                            same_recording=not allow_other_data,
                            retrain=f"train likelihood --data {data} {split_overrides(split_dict(split))} "
                                    "--out NEW_RUN")
    if dps.get("warm_start_run"):   # a direct decoder: its own split says what it trained on
        warm = open_run(dps["warm_start_run"], expect_kind="decoder")
        warm_split = _split_of_config(prepared, warm.config, n_target=n_target, n_lead=n_lead)
        same_file = warm.meta.get("data_sha256") in (None, prepared.source_sha256)
        overlap = sorted(set(_ints(split.test_trials)) - set(_ints(warm_split.test_trials))) if same_file else []
        if overlap:
            sd = split_dict(warm_split)
            raise RunError(f"The warm-start decoder run {str(warm.path)!r} trained on {len(overlap)} of the "
                           f"{len(split.test_trials)} test trials of {data} {_trials_text(overlap)}: it used "
                           f"{_split_text(sd)}, this run tests {_split_text(split_dict(split))}. Retrain it on this "
                           f"split: neurovox train decoder --data {data} {split_overrides(split_dict(split))} ...")
