"""The frozen speech model of stage 2 and what decoder training derives from it: the synthesizer and
speech encoder of a speech run (`FrozenSpeech`), the encoder's reference controls of a whole recording,
and the starting point of the decoder's output layer (the speaker's mean voice, or a calibrated loudness
when there is no encoder)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from neurovox.decoders.base import NeuralDecoder
from neurovox.errors import DataError


class FrozenSpeech(torch.nn.Module):
    """The frozen synthesizer and (optionally) the frozen speech encoder of a speech run."""

    def __init__(self, synth: torch.nn.Module, encoder: Any = None):
        super().__init__()
        self.synth = synth
        self.encoder = encoder
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "FrozenSpeech":
        """Always in eval mode (no dropout in the frozen encoder), whatever the trainer asks."""
        return super().train(False)

    @torch.no_grad()
    def reference_controls(self, spec_power: torch.Tensor) -> dict[str, torch.Tensor] | None:
        """Encoder controls of the real spectrogram (batch, n_frames, 256), or None without an encoder."""
        if self.encoder is None:
            return None
        raw = self.encoder(spec_power)
        raw = raw.raw if hasattr(raw, "raw") else raw
        return self.synth.get_controls(raw)


def load_frozen_speech(speech_run: str | Path | None, noise_power: np.ndarray | None = None) -> FrozenSpeech:
    """Synth + encoder from a speech run; without one, the default synthesizer and no reference loss."""
    from neurovox.synth import FormantSynth, SynthConfig

    if speech_run is None:
        return FrozenSpeech(FormantSynth(SynthConfig(), noise_power=noise_power))
    from neurovox.encoder import load_speech_model

    model = load_speech_model(speech_run)
    synth = getattr(model, "synth", None)
    encoder = getattr(model, "encoder", None)
    if synth is None or encoder is None:
        raise DataError(f"The speech run {str(speech_run)!r} does not provide a synthesizer and an encoder; "
                        "pass the --out directory of `neurovox train speech`.")
    return FrozenSpeech(synth, encoder)


@torch.no_grad()
def reference_frames(speech: FrozenSpeech, spec_power: np.ndarray, chunk: int = 4096,
                     context: int = 256) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The frozen encoder's raw controls and bounded controls for every frame of a recording.

    Parameters
    ----------
    spec_power : ndarray, shape (n_frames, 256)
        Power spectrogram of the whole recording.
    chunk, context : int
        Frames per encoder call and extra frames of context on each side (the encoder is a centred
        convolution network; context beyond its receptive field makes chunking exact).

    Returns
    -------
    raw : Tensor, shape (n_frames, N_RAW)
    controls : dict of Tensor, (n_frames,) or (n_frames, 6) each
    """
    spec = torch.as_tensor(np.asarray(spec_power), dtype=torch.float32)
    n = spec.shape[0]
    parts = []
    for a in range(0, n, chunk):
        lo, hi = max(0, a - context), min(n, a + chunk + context)
        raw = speech.encoder(spec[None, lo:hi])
        raw = raw.raw if hasattr(raw, "raw") else raw
        parts.append(raw[0, a - lo: a - lo + min(chunk, n - a)])
    raw = torch.cat(parts)
    controls = {k: v[0] for k, v in speech.synth.get_controls(raw[None]).items()}
    return raw, controls


@torch.no_grad()
def init_output_bias(decoder: NeuralDecoder, ref_raw: torch.Tensor, weight: torch.Tensor) -> None:
    """Start the decoder at the weighted mean of the reference raw controls (a neutral voice of this speaker
    at its typical loudness), so that training starts from speech-like output, not from silence."""
    w = weight[:, None].to(ref_raw)
    decoder.out.bias.copy_((ref_raw * w).sum(0) / w.sum().clamp_min(1e-6))


@torch.no_grad()
def calibrate_loudness(decoder: NeuralDecoder, synth: torch.nn.Module, batch: dict[str, np.ndarray]) -> float:
    """Set the output bias of the loudness control so that the untrained decoder's speech is as loud as the
    reference speech (mean mel dB over speech frames). Starting far too loud or too quiet pushes the
    loudness into the flat end of its exp-sigmoid, where the spectral loss has almost no gradient.

    Returns the chosen raw loudness bias.
    """
    from neurovox import dsp

    mask = torch.as_tensor(batch["speech_mask"]).bool()
    ref = torch.as_tensor(batch["mel_db"])[mask].mean()
    n = int(mask.shape[1])
    best, best_err = 0.0, float("inf")
    for bias in np.linspace(-8.0, 4.0, 13):
        raw = torch.zeros(mask.shape[0], n, decoder.out.out_features)
        raw[..., 1] = float(bias)  # raw channel 1 = loudness (neurovox.synth.PARAM_NAMES order)
        out = synth(raw, generator=torch.Generator().manual_seed(0))
        level = dsp.power_to_db(dsp.power_to_mel(out.spec_power))[mask].mean()
        err = abs(float(level - ref))
        if err < best_err:
            best, best_err = float(bias), err
    decoder.out.bias[1] = best
    return best
