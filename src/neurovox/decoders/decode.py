"""Loading trained decoding runs (`TrialDecoder`) and decoding the trials of a recording to files.

`load_trial_decoder(run_dir)` returns an object with `n_lead_frames`, `n_target_frames`,
`normalizer`, `prepare_config` and `decode(neural_windows, generator=None) -> dict` (mel_db, audio
and, for the formant models, params), the protocol evaluation uses (docs/architecture.md).

`decode_run(run_dir, data_path, out_dir, trials="test")` writes, for each trial window:
`wav/trial_XXX_decoded.wav` and `_reference.wav`, `params/trial_XXX.csv` + `.npz` (formant models),
`png/trial_XXX.png` (reference vs decoded mel spectrogram), and `decoded.npz` (trial, decoded and
reference mel_db, speech_mask, params). The folder appears atomically.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neurovox import dsp
from neurovox.errors import DataError, RunError
from neurovox.runs import open_run
from neurovox.utils.check import check_option
from neurovox.utils.files import atomic_path, write_json_atomic


def _load_normalizer(path: Path) -> Any:
    from neurovox.preprocess import Normalizer

    return Normalizer.from_state_dict(json.loads(path.read_text()))


def _prepare_config(run: Any) -> Any:
    from neurovox.config import from_dict
    from neurovox.preprocess.config import PrepareConfig

    return from_dict(PrepareConfig, run.config.get("prepare", {}), prefix="prepare.")


class _RunDecoder:
    """Shared attributes of the trained decoders (TrialDecoder protocol)."""

    def __init__(self, run: Any):
        dec = run.config.get("decoder") or {}
        missing = [k for k in ("n_lead_frames", "n_target_frames") if k not in dec]
        if missing:
            # Never fall back to the default 16 + 128 frames: a run trained with other windows would be
            # fed misaligned input without any error.
            raise RunError(f"The config.yaml of run {str(run.path)!r} has no decoder.{missing[0]}; the window size "
                           "the decoder was trained with is unknown. Re-run `neurovox train decoder`.")
        self.run_dir = run.path
        self.n_lead_frames = int(dec["n_lead_frames"])
        self.n_target_frames = int(dec["n_target_frames"])
        self.causal = bool(dec.get("causal", False))
        self.model_name = str(dec.get("model", "?"))
        self.normalizer = _load_normalizer(run.path / "normalizer.json")
        self.prepare_config = _prepare_config(run)

    def _check(self, neural_windows: np.ndarray) -> np.ndarray:
        x = np.asarray(neural_windows, dtype=np.float32)
        want = self.n_lead_frames + self.n_target_frames
        if x.ndim != 3 or x.shape[1] != want:
            raise DataError(f"decode() expects neural windows of shape (n, {want}, n_channels) "
                            f"({self.n_lead_frames} lead + {self.n_target_frames} target frames), got {x.shape}.")
        return x


class LinearTrialDecoder(_RunDecoder):
    """The linear baseline of a run: mel dB by regression, audio by Griffin-Lim."""

    synthesis = "griffin_lim"  # predicts the mel directly: the formant model's resynthesis does not bound it

    def __init__(self, run: Any):
        from neurovox.decoders.linear import LinearBaseline

        super().__init__(run)
        with np.load(run.path / "linear.npz", allow_pickle=False) as z:
            self.model = LinearBaseline.from_state_dict({k: z[k] for k in z.files})

    def decode(self, neural_windows: np.ndarray, generator: Any = None) -> dict[str, np.ndarray]:
        from neurovox.decoders.linear import mel_db_to_audio

        x = self._check(neural_windows)
        mel = self.model.predict(x, self.n_target_frames)
        gen = generator if isinstance(generator, np.random.Generator) else None
        return {"mel_db": mel, "audio": mel_db_to_audio(mel, generator=gen)}


class DeepTrialDecoder(_RunDecoder):
    """A deep decoder (ResNet3D, Swin3D, LSTM/GRU) with its frozen synthesizer."""

    synthesis = "formant"

    def __init__(self, run: Any, device: str = "cpu", batch_size: int = 16):
        from neurovox.decoders.base import decoder_from_args
        from neurovox.synth import FormantSynth, SynthConfig

        super().__init__(run)
        payload = torch.load(run.path / "model.pt", map_location="cpu", weights_only=False)
        self.model = decoder_from_args(payload["model_name"], payload["model_args"])
        want, got = set(self.model.state_dict()), set(payload["state_dict"])
        if want != got:  # weights saved by an older version of the architecture
            raise RunError(f"The weights in {str(run.path / 'model.pt')!r} do not fit this version's "
                           f"{payload['model_name']} decoder (saved by an older neurovox?): missing "
                           f"{sorted(want - got)[:3]}, unexpected {sorted(got - want)[:3]}. Retrain with "
                           "`neurovox train decoder`.")
        self.model.load_state_dict(payload["state_dict"])
        self.model.eval().to(device)
        self.synth = FormantSynth(SynthConfig(**payload["synth_config"]))
        self.synth.load_state_dict(payload["synth_state"])
        self.synth.eval().to(device)
        self.device = device
        self.batch_size = batch_size

    @torch.no_grad()
    def decode(self, neural_windows: np.ndarray, generator: Any = None) -> dict[str, np.ndarray]:
        from neurovox.synth import params_to_vector

        x = self._check(neural_windows)
        gen = generator if isinstance(generator, torch.Generator) else None
        mels, audios, params = [], [], []
        for i in range(0, len(x), self.batch_size):
            xb = torch.from_numpy(x[i:i + self.batch_size]).to(self.device)
            out = self.synth(self.model(xb, self.n_target_frames), generator=gen)
            mels.append(dsp.power_to_db(dsp.power_to_mel(out.spec_power)).cpu().numpy())
            audios.append(out.wave.cpu().numpy())
            params.append(params_to_vector(out.controls).cpu().numpy())
        return {"mel_db": np.concatenate(mels).astype(np.float32), "audio": np.concatenate(audios).astype(np.float32),
                "params": np.concatenate(params).astype(np.float32)}


def load_trial_decoder(run_dir: str | Path, device: str = "cpu") -> LinearTrialDecoder | DeepTrialDecoder:
    """Load a finished decoder run (kind "decoder") as a TrialDecoder."""
    run = open_run(run_dir, expect_kind="decoder", require_done=True)
    if (run.path / "linear.npz").exists():
        return LinearTrialDecoder(run)
    if (run.path / "model.pt").exists():
        return DeepTrialDecoder(run, device=device)
    raise RunError(f"Run {str(run.path)!r} has neither linear.npz nor model.pt; re-run `neurovox train decoder`.")


def load_model(run_dir: str | Path) -> Any:
    """The bare torch decoder of a deep run (for streaming)."""
    dec = load_trial_decoder(run_dir)
    if not isinstance(dec, DeepTrialDecoder):
        raise RunError(f"Run {str(run_dir)!r} holds the linear baseline, not a deep decoder.")
    return dec.model


# Decoding to files ---------------------------------------------------------------------------------

def trial_windows(decoder: Any, run: Any, data_path: str | Path, trials: str = "test") -> dict[str, np.ndarray]:
    """Windows (test-style: start 32 frames before speech onset) of the test split or of all trials."""
    from neurovox.io import read_recording
    from neurovox.preprocess import WindowDataset, make_split, prepare

    check_option("trials", trials, ("test", "all"))
    rec = read_recording(data_path)
    prepared = prepare(rec, decoder.prepare_config)
    split_cfg = run.config.get("split", {})
    split = make_split(prepared, split_cfg.get("scheme", "flinker"), fold=int(split_cfg.get("fold", 0)),
                       n_folds=int(split_cfg.get("n_folds", 10)), seed=int(split_cfg.get("seed", 0)),
                       n_target_frames=decoder.n_target_frames, n_lead_frames=decoder.n_lead_frames)
    if trials == "all":
        # Every trial as a test trial, windows placed as for testing (the split only chooses the trials).
        split = _all_trials_split(split, len(prepared.trials))
    ds = WindowDataset(prepared, split, decoder.normalizer, part="test", n_target_frames=decoder.n_target_frames,
                       n_lead_frames=decoder.n_lead_frames, generator=torch.Generator().manual_seed(0))
    if len(ds) == 0:
        raise DataError(f"No {trials} trials to decode in {str(data_path)!r}.")
    items = [ds[i] for i in range(len(ds))]
    out = {k: np.stack([np.asarray(it[k]) for it in items]) for k in ("neural", "mel_db", "audio", "speech_mask",
                                                                       "trial")}
    out["labels"] = np.array([str(prepared.trials["label"].iloc[int(t)]) for t in out["trial"]])
    return out


def _all_trials_split(split: Any, n_trials: int) -> Any:
    import dataclasses

    fields = {"test_trials": np.arange(n_trials), "train_trials": np.array([], int), "val_trials": np.array([], int)}
    if dataclasses.is_dataclass(split):
        return dataclasses.replace(split, **{k: v for k, v in fields.items() if hasattr(split, k)})
    for k, v in fields.items():
        setattr(split, k, v)
    return split


def decode_run(run_dir: str | Path, data_path: str | Path, out_dir: str | Path, *, trials: str = "test",
               seed: int = 0, write_png: bool = True) -> Path:
    """Decode the trials of `data_path` with a finished decoder run and write the files listed above."""
    from neurovox.io.audio import write_wav

    run = open_run(run_dir, expect_kind="decoder", require_done=True)
    decoder = load_trial_decoder(run.path)
    win = trial_windows(decoder, run, data_path, trials)
    decoded = decoder.decode(win["neural"], generator=torch.Generator().manual_seed(seed))
    out_dir = Path(out_dir)
    with atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        for sub in ("wav", "png", "params") if "params" in decoded else ("wav", "png"):
            (tmp / sub).mkdir()
        for i, trial in enumerate(win["trial"]):
            stem = f"trial_{int(trial):03d}"
            write_wav(tmp / "wav" / f"{stem}_decoded.wav", _playable(decoded["audio"][i]), dsp.SAMPLE_RATE_HZ)
            write_wav(tmp / "wav" / f"{stem}_reference.wav", _playable(win["audio"][i]), dsp.SAMPLE_RATE_HZ)
            if "params" in decoded:
                _write_params(tmp / "params" / stem, decoded["params"][i])
            if write_png:
                _write_png(tmp / "png" / f"{stem}.png", win["mel_db"][i], decoded["mel_db"][i],
                           f"{stem} '{win['labels'][i]}' ({decoder.model_name}{', causal' if decoder.causal else ''})")
        arrays = {"trial": win["trial"].astype(np.int64), "label": win["labels"], "decoded_mel_db": decoded["mel_db"],
                  "reference_mel_db": win["mel_db"].astype(np.float32), "speech_mask": win["speech_mask"].astype(bool)}
        if "params" in decoded:
            arrays["params"] = decoded["params"]
        with open(tmp / "decoded.npz", "wb") as fh:
            np.savez(fh, **arrays)
        write_json_atomic(tmp / "decode.json", {"run": str(run.path.resolve()), "data": str(Path(data_path).resolve()),
                                                "trials": trials, "n_trials": int(len(win["trial"])), "seed": seed})
    return out_dir


def _playable(wave: np.ndarray) -> np.ndarray:
    peak = float(np.max(np.abs(wave))) if wave.size else 0.0
    return (wave / peak * 0.9 if peak > 1.0 else wave).astype(np.float32)


def _write_params(stem: Path, params: np.ndarray) -> None:
    from neurovox.synth import PARAM_NAMES

    np.savez(str(stem) + ".npz", params=params, names=np.array(PARAM_NAMES),
             frame_rate_hz=np.array(dsp.FRAME_RATE_HZ))
    header = "time_s," + ",".join(PARAM_NAMES)
    t = np.arange(len(params)) / dsp.FRAME_RATE_HZ
    np.savetxt(str(stem) + ".csv", np.column_stack([t, params]), delimiter=",", header=header, comments="",
               fmt="%.6g")


def _write_png(path: Path, ref_mel: np.ndarray, dec_mel: np.ndarray, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
