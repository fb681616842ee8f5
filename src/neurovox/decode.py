"""The decode stage: any finished decoding run (kind "decoder" or "dps") -> per-trial files.

`load_decoder(run_dir)` returns the run's `TrialDecoder` (`neurovox.decoders` for kind "decoder",
`neurovox.diffusion` for kind "dps"); `trial_windows` cuts the windows a decoder reads, exactly as
its training split placed the test windows; `decode_run(run_dir, data_path, out_dir, trials="test")`
writes, for each trial window:

    wav/trial_XXX_decoded.wav, wav/trial_XXX_reference.wav   (peak-normalised for listening)
    params/trial_XXX.csv + .npz                              (formant decoders: 18 parameters per frame)
    png/trial_XXX.png                                        (reference vs decoded mel spectrogram)
    decoded.npz                                              (trial, label, decoded and reference mel_db,
                                                              speech_mask, params)
    decode.json                                              (run, data, trials, seed, the decoder's info)

The folder appears atomically (written under a temporary name, then renamed).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neurovox import dsp
from neurovox.errors import DataError
from neurovox.io.audio import playable, write_wav
from neurovox.runs import open_run
from neurovox.utils.check import check_option
from neurovox.utils.files import atomic_path, write_json_atomic

DECODER_KINDS = ("decoder", "dps")


def load_decoder(run_dir: str | Path) -> Any:
    """The TrialDecoder of a finished run of kind "decoder" or "dps" (protocol: neurovox.evaluate.chance)."""
    run = open_run(run_dir, expect_kind=DECODER_KINDS, require_done=True)
    if run.kind == "dps":
        from neurovox.diffusion.decode import load_trial_decoder as load_dps  # the diffusion stack only here

        return load_dps(run.path)
    from neurovox.decoders.decode import load_trial_decoder

    return load_trial_decoder(run.path)


def trial_windows(decoder: Any, run: Any, data_path: str | Path, trials: str = "test") -> dict[str, np.ndarray]:
    """Windows (test-style: start 32 frames before speech onset) of the test split or of all trials.

    Returns ``{"neural": (n, n_lead + n_target, n_channels), "mel_db": (n, n_target, n_mels), "audio",
    "speech_mask", "trial", "labels"}``; the neural windows are normalised with the run's training normaliser.
    """
    from neurovox.io import read_recording
    from neurovox.preprocess import WindowDataset, prepare
    from neurovox.preprocess.splits import split_from_config

    check_option("trials", trials, ("test", "all"))
    prepared = prepare(read_recording(data_path), decoder.prepare_config)
    split = split_from_config(prepared, run.config.get("split"), n_target_frames=decoder.n_target_frames,
                              n_lead_frames=decoder.n_lead_frames)
    if trials == "all":
        # Every trial as a test trial, windows placed as for testing (the split only chooses the trials).
        split = dataclasses.replace(split, test_trials=np.arange(len(prepared.trials)),
                                    train_trials=np.array([], int), val_trials=np.array([], int))
    ds = WindowDataset(prepared, split, decoder.normalizer, part="test", n_target_frames=decoder.n_target_frames,
                       n_lead_frames=decoder.n_lead_frames, generator=torch.Generator().manual_seed(0))
    if len(ds) == 0:
        raise DataError(f"No {trials} trials to decode in {str(data_path)!r}.")
    items = [ds[i] for i in range(len(ds))]
    out = {k: np.stack([np.asarray(it[k]) for it in items]) for k in ("neural", "mel_db", "audio", "speech_mask",
                                                                       "trial")}
    out["labels"] = np.array([str(prepared.trials["label"].iloc[int(t)]) for t in out["trial"]])
    return out


def decode_run(run_dir: str | Path, data_path: str | Path, out_dir: str | Path, *, trials: str = "test",
               seed: int = 0, write_png: bool = True) -> Path:
    """Decode the trials of `data_path` with a finished decoder or dps run and write the files listed above."""
    run = open_run(run_dir, expect_kind=DECODER_KINDS, require_done=True)
    decoder = load_decoder(run.path)
    win = trial_windows(decoder, run, data_path, trials)
    decoded = decoder.decode(win["neural"], generator=torch.Generator().manual_seed(seed))
    out_dir = Path(out_dir)
    with atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        for sub in ("wav", "png", "params") if "params" in decoded else ("wav", "png"):
            (tmp / sub).mkdir()
        for i, trial in enumerate(win["trial"]):
            stem = f"trial_{int(trial):03d}"
            write_wav(tmp / "wav" / f"{stem}_decoded.wav", playable(decoded["audio"][i]), dsp.SAMPLE_RATE_HZ)
            write_wav(tmp / "wav" / f"{stem}_reference.wav", playable(win["audio"][i]), dsp.SAMPLE_RATE_HZ)
            if "params" in decoded:
                _write_params(tmp / "params" / stem, decoded["params"][i])
            if write_png:
                _write_png(tmp / "png" / f"{stem}.png", win["mel_db"][i], decoded["mel_db"][i],
                           f"{stem} '{win['labels'][i]}' ({decoder.model_name}{', causal' if decoder.causal else ', anticausal' if decoder.anticausal else ''})")
        arrays = {"trial": win["trial"].astype(np.int64), "label": win["labels"], "decoded_mel_db": decoded["mel_db"],
                  "reference_mel_db": win["mel_db"].astype(np.float32), "speech_mask": win["speech_mask"].astype(bool)}
        if "params" in decoded:
            arrays["params"] = decoded["params"]
        with open(tmp / "decoded.npz", "wb") as fh:
            np.savez(fh, **arrays)
        write_json_atomic(tmp / "decode.json", {"run": str(run.path.resolve()), "data": str(Path(data_path).resolve()),
                                                "trials": trials, "n_trials": int(len(win["trial"])), "seed": seed,
                                                "decoder": decoder.info()})
    return out_dir


def _write_params(stem: Path, params: np.ndarray) -> None:
    from neurovox.synth import PARAM_NAMES

    np.savez(str(stem) + ".npz", params=params, names=np.array(PARAM_NAMES),
             frame_rate_hz=np.array(dsp.FRAME_RATE_HZ))
    header = "time_s," + ",".join(PARAM_NAMES)
    t = np.arange(len(params)) / dsp.FRAME_RATE_HZ
    np.savetxt(str(stem) + ".csv", np.column_stack([t, params]), delimiter=",", header=header, comments="",
               fmt="%.6g")


def _write_png(path: Path, ref_mel: np.ndarray, dec_mel: np.ndarray, title: str) -> None:
    from neurovox.report.figures import pyplot

    plt = pyplot()
    fig, axes = plt.subplots(2, 1, figsize=(6, 4), sharex=True)
    vmax = float(np.max(ref_mel))
    extent = (0, len(ref_mel) / dsp.FRAME_RATE_HZ, 0, ref_mel.shape[1])
    for ax, mel, name in zip(axes, (ref_mel, dec_mel), ("reference", "decoded")):
        ax.imshow(mel.T, origin="lower", aspect="auto", extent=extent, vmin=vmax - 80, vmax=vmax, cmap="magma")
        ax.set_ylabel(f"{name}\nmel bin")
    axes[-1].set_xlabel("time (s)")
    axes[0].set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
