"""Speech encoder: power spectrogram -> raw controls of the formant synthesizer (non-causal)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from neurovox import dsp
from neurovox.errors import DataError
from neurovox.synth import N_RAW
from neurovox.utils.check import check_range


@dataclass
class EncoderConfig:
    hidden: int = 224               # channels of the temporal convolutions
    n_blocks: int = 5               # residual dilated-convolution blocks
    kernel_size: int = 3            # temporal kernel, frames (odd; non-causal, centred)
    dilation_cycle: int = 4         # dilations 1, 2, 4, ... up to 2**(cycle-1), then repeat
    dropout: float = 0.0            # dropout inside the blocks (fraction)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        check_range("encoder.hidden", self.hidden, 8, 4096)
        check_range("encoder.n_blocks", self.n_blocks, 0, 64)
        check_range("encoder.kernel_size", self.kernel_size, 1, 31)
        if self.kernel_size % 2 == 0:
            from neurovox.errors import ConfigError
            raise ConfigError(f"encoder.kernel_size must be odd (centred, non-causal), got {self.kernel_size}.")
        check_range("encoder.dilation_cycle", self.dilation_cycle, 1, 10)
        check_range("encoder.dropout", self.dropout, 0.0, 0.9)


CEPSTRUM_QUEFRENCY = (32, 256)  # samples: pitch periods of 500 Hz down to 62.5 Hz at 16 kHz
N_CEPS = CEPSTRUM_QUEFRENCY[1] - CEPSTRUM_QUEFRENCY[0]


def pitch_cepstrum(db: torch.Tensor) -> torch.Tensor:
    """Real cepstrum of a dB spectrum at the quefrencies of voice pitch (a direct pitch cue).

    db : (batch, n_frames, 256) dB of the 0-8 kHz bins -> (batch, n_frames, N_CEPS); a peak at
    quefrency q samples marks f0 = 16000 / q Hz.
    """
    full = torch.cat([db, db[..., -1:]], dim=-1)  # (batch, n_frames, 257), Nyquist bin ~ top bin
    ceps = torch.fft.irfft(full / 10.0, n=2 * dsp.N_BINS, dim=-1)  # (batch, n_frames, 512)
    return ceps[..., CEPSTRUM_QUEFRENCY[0]:CEPSTRUM_QUEFRENCY[1]]


class _ChannelNorm(nn.Module):
    """LayerNorm over channels of (batch, channels, n_frames), per frame (no pooling over time)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(n)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


class _Block(nn.Module):
    def __init__(self, n: int, kernel_size: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.norm = _ChannelNorm(n)
        self.conv = nn.Conv1d(n, n, kernel_size, dilation=dilation, padding=dilation * (kernel_size - 1) // 2)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop(self.conv(torch.nn.functional.gelu(self.norm(x))))


class SpeechEncoder(nn.Module):
    """Temporal convolution network from a power spectrogram to raw synthesizer controls.

    Input: dB values per bin plus their pitch cepstrum (`pitch_cepstrum`), each standardised with
    statistics set by `set_input_stats` (buffers, saved with the model). The output layer's bias
    starts at `init_raw` (a neutral voice).

    forward(spec_power: (batch, n_frames, 256)) -> raw (batch, n_frames, N_RAW)
    """

    def __init__(self, cfg: EncoderConfig | None = None, init_raw: torch.Tensor | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or EncoderConfig()
        cfg.validate()
        self.register_buffer("db_mean", torch.zeros(dsp.N_BINS))
        self.register_buffer("db_std", torch.full((dsp.N_BINS,), 20.0))
        self.register_buffer("ceps_mean", torch.zeros(N_CEPS))
        self.register_buffer("ceps_std", torch.ones(N_CEPS))
        self.inp = nn.Conv1d(dsp.N_BINS + N_CEPS, cfg.hidden, cfg.kernel_size, padding=(cfg.kernel_size - 1) // 2)
        self.blocks = nn.Sequential(*[_Block(cfg.hidden, cfg.kernel_size, 2 ** (i % cfg.dilation_cycle), cfg.dropout)
                                      for i in range(cfg.n_blocks)])
        self.out_norm = _ChannelNorm(cfg.hidden)
        self.head = nn.Conv1d(cfg.hidden, N_RAW, 1)
        with torch.no_grad():
            self.head.weight.mul_(0.1)
            if init_raw is not None:
                self.head.bias.copy_(init_raw.reshape(N_RAW))

    def set_input_stats(self, spec_power: np.ndarray) -> None:
        """Per-bin mean/std of dB input from training frames, spec_power (n_frames, 256)."""
        db = dsp.power_to_db(np.asarray(spec_power, dtype=np.float64))
        ceps = pitch_cepstrum(torch.from_numpy(db)[None])[0].numpy()
        with torch.no_grad():
            self.db_mean.copy_(torch.from_numpy(db.mean(0)).float())
            self.db_std.copy_(torch.from_numpy(np.maximum(db.std(0), 1.0)).float())
            self.ceps_mean.copy_(torch.from_numpy(ceps.mean(0)).float())
            self.ceps_std.copy_(torch.from_numpy(np.maximum(ceps.std(0), 1e-3)).float())

    def forward(self, spec_power: torch.Tensor) -> torch.Tensor:
        if spec_power.ndim != 3 or spec_power.shape[-1] != dsp.N_BINS:
            raise DataError(f"SpeechEncoder input must be a power spectrogram of shape (batch, n_frames, "
                            f"{dsp.N_BINS}) (neurovox.dsp.stft_power), got {tuple(spec_power.shape)}.")
        db = dsp.power_to_db(spec_power.float())
        x = torch.cat([(db - self.db_mean) / self.db_std,
                       (pitch_cepstrum(db) - self.ceps_mean) / self.ceps_std], dim=-1)  # (batch, n_frames, 256 + N_CEPS)
        h = self.inp(x.transpose(1, 2))  # (batch, hidden, n_frames)
        h = self.blocks(h)
        raw = self.head(torch.nn.functional.gelu(self.out_norm(h)))  # (batch, N_RAW, n_frames)
        return raw.transpose(1, 2)

    @property
    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
