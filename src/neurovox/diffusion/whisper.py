"""Optional speech-model features for the likelihood: a Whisper encoder from a LOCAL directory.

`WhisperFeatures(local_dir)` loads `transformers.WhisperModel.from_pretrained(local_dir)` (never
from a hub: `local_files_only=True`), keeps its encoder, freezes its weights, and maps a
unit-scale mel image (batch, 1, 80, n_frames) at 125 Hz to features (batch, n_frames, out_dim)
at the same frame rate. Everything is differentiable in the input, so DPS guidance flows through
the encoder into the mel.

Conversion to Whisper's input (Radford et al. 2022; `WhisperFeatureExtractor`):
log10 mel power = mel_db / 10 (corrected for our 512-sample window vs Whisper's 400), floored at
(window max - 8), scaled as (log + 4) / 4, resampled 125 Hz -> 100 Hz, padded to the encoder's
fixed input length with the silence value. The encoder output (50 Hz) is resampled back to 125 Hz.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from neurovox.diffusion.features import unit_to_mel_db
from neurovox.errors import ConfigError, DataError

WHISPER_FRAME_RATE_HZ = 100.0
OUR_FRAME_RATE_HZ = 125.0
_WINDOW_POWER_LOG10 = 2 * math.log10(512 / 400)  # our STFT window is longer: more power per bin


def load_whisper_encoder(local_dir: str | Path) -> nn.Module:
    """The encoder of a Whisper checkpoint stored in `local_dir` (config.json + weights)."""
    local_dir = Path(local_dir)
    if not (local_dir / "config.json").is_file():
        raise ConfigError(
            f"whisper_dir {str(local_dir)!r} holds no Whisper checkpoint (no config.json). Save one there with "
            "`WhisperModel.from_pretrained(name).save_pretrained(dir)` on a machine with network access, "
            "or set whisper_dir to '' to use mel input only."
        )
    try:
        from transformers import WhisperModel
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigError("Whisper features need `transformers`: pip install 'neurovox[whisper]'.") from exc
    model = WhisperModel.from_pretrained(str(local_dir), local_files_only=True)
    return model.get_encoder()


class WhisperFeatures(nn.Module):
    """Frozen Whisper encoder features, (batch, 1, n_mels, n_frames) -> (batch, n_frames, out_dim)."""

    def __init__(self, local_dir: str | Path, out_dim: int = 64) -> None:
        super().__init__()
        self.local_dir = str(local_dir)
        self.encoder = load_whisper_encoder(local_dir)
        for p in self.encoder.parameters():
            p.requires_grad_(False)
        cfg = self.encoder.config
        self.n_mels = int(cfg.num_mel_bins)
        self.n_input_frames = int(cfg.max_source_positions) * 2
        self.proj = nn.Linear(int(cfg.d_model), out_dim)

    def train(self, mode: bool = True) -> "WhisperFeatures":
        super().train(mode)
        self.encoder.eval()  # frozen: no dropout
        return self

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        b, _, n_mels, n_frames = x0.shape
        if n_mels != self.n_mels:
            raise DataError(f"Whisper checkpoint {self.local_dir!r} expects {self.n_mels} mel bins, got {n_mels}.")
        log_spec = unit_to_mel_db(rearrange(x0, "b 1 m t -> b m t")) / 10.0 - _WINDOW_POWER_LOG10
        floor = log_spec.detach().amax(dim=(1, 2), keepdim=True) - 8.0
        log_spec = (torch.maximum(log_spec, floor) + 4.0) / 4.0
        n_100 = max(1, round(n_frames * WHISPER_FRAME_RATE_HZ / OUR_FRAME_RATE_HZ))
        if n_100 > self.n_input_frames:
            raise DataError(f"Window of {n_frames} frames is longer than the Whisper encoder's input "
                            f"({self.n_input_frames} frames at 100 Hz); use shorter windows.")
        feats = F.interpolate(log_spec, size=n_100, mode="linear", align_corners=False)
        pad_value = (floor + 4.0) / 4.0
        feats = torch.cat([feats, pad_value.expand(b, n_mels, self.n_input_frames - n_100)], dim=2)
        hidden = self.encoder(input_features=feats).last_hidden_state   # (b, n_input_frames/2, d_model)
        n_50 = max(1, math.ceil(n_100 / 2))
        hidden = rearrange(hidden[:, :n_50], "b t d -> b d t")
        hidden = F.interpolate(hidden, size=n_frames, mode="linear", align_corners=False)
        return self.proj(rearrange(hidden, "b d t -> b t d"))
