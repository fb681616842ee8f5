"""Generative decoding (issue 8 item 5): compute per decoded second vs sampler steps, and PCC at each.

Trains a prior (shipped corpus) and a likelihood model on a simulated participant, builds a "dps"
run, then decodes the same test trials at several step counts with each posterior sampler the run
offers (DAPS, the default, and DPS), and with the default one: the likelihood off (unconditional
prior samples), trial-shuffled neural windows (chance), and warm-started from the linear baseline's
mel output (noised to 0.4 T, proportionally fewer steps). The same test windows are also scored for
the two no-neural baselines of `neurovox.evaluate` (built from the split's training trials only): a
sampler has decoded content only where it beats the onset-aligned mean. Sampling time excludes
Griffin-Lim, which is timed separately. PCC: per test trial over the speech segment (mean); every PCC
row also has its tilt-removed PCC (training speech spectrum subtracted first; the constant spectrum
scores 0).
Only the public functions of `neurovox.diffusion` are used (train_prior, train_likelihood,
make_dps_run with its `overrides`, load_trial_decoder, DpsTrialDecoder.sample_mel).

small: a tiny prior (150 steps, 0.36 M parameters, ~15 s) and a tiny likelihood (12 epochs), 60
  trials, 6 test trials, steps 5/10/25 (~30 s on 2 idle cores). The compute figures are real for
  this tiny architecture (they depend on architecture and step count, not on training; the full
  size measures the real one); the PCC of a prior this small is NOT meaningful (it measures the
  harness, not the method) and is labelled so.
full: the `--quick` prior architecture (2000 steps, 3.4 M parameters; ~10 of its ~17 min), 150
  trials, 20 test trials, steps 10/25/50/100/200; unconditional and chance at 50 steps.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

SIZES = {
    "small": {"n_trials": 60, "n_test": 6, "steps": (5, 10, 25), "prior_steps": 150,
              "denoiser": {"arch": "unet1d", "channels": [32, 48, 64], "n_res_blocks": 1, "n_heads": 2, "time_dim": 32},
              "lik": {"hidden": 48, "max_epochs": 12, "patience_epochs": 12}},
    "full": {"n_trials": 150, "n_test": 20, "steps": (10, 25, 50, 100, 200), "prior_steps": 2000,
             "denoiser": {"arch": "unet1d", "channels": [128, 160, 192], "n_res_blocks": 1, "n_heads": 4, "time_dim": 64},
             "lik": {"hidden": 64, "max_epochs": 25, "patience_epochs": 6}},
}


ALGORITHMS = ("daps", "dps")
ALGORITHM_NOTES = {"daps": "per step one denoiser pass + the run's Langevin updates through the likelihood",
                   "dps": "per step one denoiser forward + backward (the DPS gradient)"}


def _row(case: str, metric: str, value: float, unit: str, note: str = "") -> dict:
    return {"benchmark": "diffusion", "case": case, "metric": metric, "value": float(value), "unit": unit, "note": note}


def run(size: str = "small", prior_run: str | None = None) -> list[dict]:
    """Rows of the generative-decoding benchmark; `prior_run` reuses a trained prior (skips its training).

    Runs on one torch thread (restored afterwards): these small convolutions are faster on one
    thread than on two when the machine is shared.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run(size, prior_run)
    finally:
        torch.set_num_threads(threads)


def _run(size: str, prior_run: str | None) -> list[dict]:
    from neurovox.config import from_dict
    from neurovox.diffusion.decode import load_trial_decoder, make_dps_run
    from neurovox.diffusion.train_likelihood import LikelihoodRunConfig, train_likelihood
    from neurovox.diffusion.train_prior import PriorRunConfig, train_prior
    from neurovox.evaluate.evaluate import build_test_set
    from neurovox.evaluate.metrics import pcc_per_trial, pcc_tilt_removed
    from neurovox.io import write_flinker_hdf5
    from neurovox.simulate import SimulateConfig, simulate_participant

    s = SIZES[size]
    # PCC of the tiny small-size prior says nothing about the method: label every PCC row of that size
    pcc_note = " (tiny prior: PCC not meaningful)" if size == "small" else ""
    rows: list[dict] = []
    root = Path(tempfile.mkdtemp(prefix="bench_diffusion_"))
    rec, _ = simulate_participant(SimulateConfig(n_trials=s["n_trials"], layout="grid8x8"), 0, kind="high_gamma")
    data = write_flinker_hdf5(rec, root / "sim.h5")

    if prior_run is None:
        torch.manual_seed(0)
        pcfg = from_dict(PriorRunConfig, {"denoiser": s["denoiser"], "prior": {
            "max_steps": s["prior_steps"], "batch_size": 16, "lr": 2e-3 if size == "small" else 1e-3,
            "warmup_steps": 20 if size == "small" else 100, "val_every_steps": min(500, s["prior_steps"]),
            "corpus_copies": 1 if size == "small" else 2, "ema_decay": 0.99 if size == "small" else 0.995}})
        t0 = time.perf_counter()
        prior = train_prior(root / "prior", pcfg, progress=False)
        rows.append(_row("prior", "training time", time.perf_counter() - t0, "s",
                         f"{s['prior_steps']} steps x 16 windows, {s['denoiser']['arch']} {s['denoiser']['channels']}"))
        prior_run = prior.path
        rows.append(_row("prior", "validation loss (EMA)", _done_value(prior.path, "val_loss"), "MSE",
                         "epsilon target, 4 fixed t"))
    torch.manual_seed(0)
    t0 = time.perf_counter()
    lik = train_likelihood(data, root / "lik", from_dict(LikelihoodRunConfig, {"prepare": {"praat": False},
                                                                              "likelihood": s["lik"]}),
                           progress=False, cache_dir=root / "cache")
    rows.append(_row("likelihood", "training time", time.perf_counter() - t0, "s"))
    rows.append(_row("likelihood", "test mean per-channel r", _done_value(lik.path, "test_mean_r"), "r"))
    dps = make_dps_run(root / "dps_default", prior_run, lik.path)  # the default sampler settings
    dec = load_trial_decoder(dps.path)
    default_algo = getattr(dec.config, "algorithm", "dps")
    test = build_test_set(dec, dps.config, data)  # the windows, references and baselines evaluate scores
    n = min(s["n_test"], len(test.neural_windows))
    y, ref, mask = test.neural_windows[:n], test.mel_db[:n], test.speech_mask[:n]
    decoded_s = n * dec.n_target_frames / 125.0

    def timed(fn) -> tuple[np.ndarray, float]:
        t = time.perf_counter()
        out = fn()
        return out, time.perf_counter() - t

    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731

    def pcc_rows(case: str, mel: np.ndarray, note: str, from_prior: bool = True) -> list[dict]:
        tilt = pcc_tilt_removed(ref, mel, test.train_mel_mean_db, mask).mean()
        note += pcc_note if from_prior else ""
        return [_row(case, "PCC", pcc_per_trial(ref, mel, mask).mean(), "r", note),
                _row(case, "tilt-removed PCC", tilt, "r", note)]

    for name, what in (("onset_mean", "no-neural: onset-aligned mean of training targets, given trial timing"),
                       ("constant_spectrum", "no-neural: mean training speech spectrum")):
        rows += pcc_rows(f"baseline {name}", test.baselines[name][:n], what, from_prior=False)

    # every posterior sampler the dps run offers (DAPS, the default, and DPS), same prior and likelihood
    for algo in ALGORITHMS:
        try:
            run_a = dps if algo == default_algo else make_dps_run(root / algo, prior_run, lik.path,
                                                                   overrides={"algorithm": algo})
            dec_a = dec if algo == default_algo else load_trial_decoder(run_a.path)
        except Exception as exc:  # sampler settings belong to neurovox.diffusion and may change
            rows.append(_row(algo, "skipped", float("nan"), "", f"{type(exc).__name__}: {exc}"[:120]))
            continue
        what = ALGORITHM_NOTES.get(algo, "")
        for steps in s["steps"]:
            case = f"{algo} {steps} steps" + (" (default)" if algo == default_algo else "")
            mel, dt = timed(lambda: dec_a.sample_mel(y, gen(), n_steps=steps))
            rows += pcc_rows(case, mel, f"{n} test trials")
            rows.append(_row(case, "compute per decoded second", dt / decoded_s, "s/s",
                             f"sampling only, 1 thread; {what}"))
    steps = min(50, s["steps"][-1])
    free, _ = timed(lambda: dec.sample_mel(y, gen(), n_steps=steps, guidance_scale=0.0))
    rows += pcc_rows(f"unconditional {steps} steps", free, f"same prior, no likelihood ({default_algo} run)")
    shuffled, _ = timed(lambda: dec.sample_mel(y[np.roll(np.arange(n), 1)], gen(), n_steps=steps))
    rows += pcc_rows(f"chance {steps} steps", shuffled, f"trial-shuffled neural ({default_algo})")
    try:  # warm start from the linear baseline
        from neurovox.decoders import load_trial_decoder as load_direct
        from neurovox.decoders.train import DecoderRunConfig, quick_settings, train_decoder

        quick = quick_settings("linear")
        lin_cfg = from_dict(DecoderRunConfig, {**quick, "decoder": {**quick["decoder"], "model": "linear"},
                                               "prepare": {"praat": False}})
        lin_dir = train_decoder(data, root / "linear", lin_cfg, progress=False, cache_dir=root / "cache")
        lin_mel = load_direct(lin_dir).decode(y)["mel_db"]
        rows += pcc_rows("linear baseline", lin_mel, "direct decoder, same trials", from_prior=False)
        t_start = int(0.4 * (dec.schedule.n_train_steps - 1))
        for steps in s["steps"]:
            warm_steps = max(2, int(round(steps * 0.4)))
            case = f"warm start (linear, t=0.4T) {warm_steps} steps ({default_algo})"
            mel, dt = timed(lambda: dec.sample_mel(y, gen(), n_steps=warm_steps, x_init_mel_db=lin_mel, t_start=t_start))
            rows += pcc_rows(case, mel, f"{n} test trials")
            rows.append(_row(case, "compute per decoded second", dt / decoded_s, "s/s", "sampling only"))
    except Exception as exc:  # the decoder stack is optional here; say why the row is missing
        rows.append(_row("warm start", "skipped", float("nan"), "", f"{type(exc).__name__}: {exc}"[:120]))
    try:  # the vocoder lives in diffusion internals that may move: a missing row must not stop the run
        from neurovox.diffusion.features import griffin_lim

        _, dt = timed(lambda: [griffin_lim(m, n_iter=32) for m in ref[:4]])
        rows.append(_row("griffin-lim 32 iters", "compute per decoded second", dt / (4 * dec.n_target_frames / 125.0),
                         "s/s", "4 windows"))
    except Exception as exc:
        rows.append(_row("griffin-lim", "skipped", float("nan"), "", f"{type(exc).__name__}: {exc}"[:120]))
    shutil.rmtree(root, ignore_errors=True)
    return rows


def _done_value(run_dir: Path, key: str) -> float:
    import json

    return float(json.loads((Path(run_dir) / "DONE").read_text()).get(key, float("nan")))


if __name__ == "__main__":
    import sys

    for r in run(sys.argv[1] if len(sys.argv) > 1 else "small", sys.argv[2] if len(sys.argv) > 2 else None):
        print(r)
