"""Loading trained decoder runs (kind "decoder") as `TrialDecoder`s.

`load_trial_decoder(run_dir)` returns an object with `n_lead_frames`, `n_target_frames`,
`normalizer`, `prepare_config`, `info()` and `decode(neural_windows, generator=None) -> dict` (mel_db,
audio and, for the formant models, params), the protocol evaluation uses (docs/architecture.md).
Decoding a recording to files is the decode stage's (`neurovox.decode.decode_run`), for every run kind.
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
        self.anticausal = bool(dec.get("anticausal", False))
        self.model_name = str(dec.get("model", "?"))
        self.normalizer = _load_normalizer(run.path / "normalizer.json")
        self.prepare_config = _prepare_config(run)

    def info(self) -> dict[str, Any]:
        """What decode.json records about the decoder."""
        return {"model": self.model_name, "causal": self.causal, "anticausal": self.anticausal,
                "synthesis": self.synthesis}

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

    def decode_mel(self, neural_windows: np.ndarray) -> np.ndarray:
        """Mel dB (n, n_target_frames, 80) without vocoding (occlusion analysis decodes many times)."""
        return self.model.predict(self._check(neural_windows), self.n_target_frames)

    def decode(self, neural_windows: np.ndarray, generator: Any = None) -> dict[str, np.ndarray]:
        from neurovox.decoders.linear import mel_db_to_audio

        x = self._check(neural_windows)
        mel = self.model.predict(x, self.n_target_frames)
        gen = generator if isinstance(generator, np.random.Generator) else None
        return {"mel_db": mel, "audio": mel_db_to_audio(mel, generator=gen)}


class DeepTrialDecoder(_RunDecoder):
    """A deep decoder (ResNet3D, Swin3D, LSTM/GRU) and what renders its output: the mel scale and Griffin-Lim
    (target "mel"), or its frozen formant synthesizer (target "formant")."""

    def __init__(self, run: Any, device: str = "cpu", batch_size: int = 16):
        from neurovox.decoders.base import decoder_from_args

        super().__init__(run)
        payload = torch.load(run.path / "model.pt", map_location="cpu", weights_only=False)
        self.model = decoder_from_args(payload["model_name"], payload["model_args"])
        want, got = set(self.model.state_dict()), set(payload["state_dict"])
        if want != got or "target" not in payload:  # weights saved by an older version of the architecture
            raise RunError(f"The weights in {str(run.path / 'model.pt')!r} do not fit this version's "
                           f"{payload['model_name']} decoder (saved by an older neurovox?): missing "
                           f"{sorted(want - got)[:3]}, unexpected {sorted(got - want)[:3]}"
                           f"{'' if 'target' in payload else ', no target recorded'}. Retrain with "
                           "`neurovox train decoder`.")
        self.model.load_state_dict(payload["state_dict"])
        self.model.eval().to(device)
        self.target = str(payload["target"])
        if self.target == "mel":
            self.synthesis = "griffin_lim"  # predicts the mel directly: the formant model's resynthesis bounds nothing
            self.mel_mean_db = payload["mel_mean_db"].to(device)
            self.mel_sd_db = payload["mel_sd_db"].to(device)
        else:
            from neurovox.synth import FormantSynth, SynthConfig

            self.synthesis = "formant"
            self.synth = FormantSynth(SynthConfig(**payload["synth_config"]))
            self.synth.load_state_dict(payload["synth_state"])
            self.synth.eval().to(device)
        self.device = device
        self.batch_size = batch_size

    @torch.no_grad()
    def decode_mel(self, neural_windows: np.ndarray) -> np.ndarray:
        """Mel dB (n, n_target_frames, 80) without vocoding: the mel head's output, or the formant synthesizer's
        spectrogram (its noise from a fixed seed, so that two calls differ only by their input)."""
        x = self._check(neural_windows)
        outs = [self.model(torch.from_numpy(x[i:i + self.batch_size]).to(self.device), self.n_target_frames)
                for i in range(0, len(x), self.batch_size)]
        if self.target == "mel":
            return (torch.cat(outs) * self.mel_sd_db + self.mel_mean_db).cpu().numpy().astype(np.float32)
        gen = torch.Generator(device=self.device).manual_seed(0)
        return np.concatenate([dsp.power_to_db(dsp.power_to_mel(self.synth(raw, generator=gen).spec_power)).cpu().numpy()
                               for raw in outs]).astype(np.float32)

    @torch.no_grad()
    def decode(self, neural_windows: np.ndarray, generator: Any = None) -> dict[str, np.ndarray]:
        x = self._check(neural_windows)
        outs = [self.model(torch.from_numpy(x[i:i + self.batch_size]).to(self.device), self.n_target_frames)
                for i in range(0, len(x), self.batch_size)]
        if self.target == "mel":
            from neurovox.decoders.linear import mel_db_to_audio

            mel = (torch.cat(outs) * self.mel_sd_db + self.mel_mean_db).cpu().numpy().astype(np.float32)
            gen = generator if isinstance(generator, np.random.Generator) else None
            return {"mel_db": mel, "audio": mel_db_to_audio(mel, generator=gen)}
        from neurovox.synth import params_to_vector

        gen = generator if isinstance(generator, torch.Generator) else None
        mels, audios, params = [], [], []
        for raw in outs:
            out = self.synth(raw, generator=gen)
            mels.append(dsp.power_to_db(dsp.power_to_mel(out.spec_power)).cpu().numpy())
            audios.append(out.wave.cpu().numpy())
            params.append(params_to_vector(out.controls).cpu().numpy())
        return {"mel_db": np.concatenate(mels).astype(np.float32), "audio": np.concatenate(audios).astype(np.float32),
                "params": np.concatenate(params).astype(np.float32)}

    def info(self) -> dict[str, Any]:
        return {**super().info(), "target": self.target}


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
