"""Configuration of `neurovox train decoder`: the split, the decoder training section and the run config
(prepare + split + decoder + seed), the `--quick` overrides and the constructor arguments of each model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from neurovox.preprocess.config import PrepareConfig
from neurovox.preprocess.splits import SplitConfig
from neurovox.utils.check import check_option, check_range

MODELS = ("linear", "resnet", "swin", "lstm", "gru")


@dataclass
class DecoderTrainConfig:
    """Stage-2 decoder training (flat; sizes of every model live here, the chosen one is used)."""

    model: str = "resnet"                # decoder: "linear" | "resnet" | "swin" | "lstm" | "gru"
    causal: bool = False                 # strictly causal model (output frame t sees neural frames <= t)
    n_target_frames: int = 128           # frames (8 ms) of audio target per window
    n_lead_frames: int = 16              # frames of neural lead before the first target frame
    batch_size: int = 16                 # windows per optimisation step
    train_crop_frames: int = 0           # frames, random target crop of each training batch (0 = whole window)
    max_epochs: int = 300                # epochs, upper bound (early stopping usually ends sooner)
    max_minutes: float = 0.0             # min, wall-clock limit of training (0 = none); it ends a run at a step
                                         # that depends on the machine's speed, so a run it caps is not
                                         # reproducible (max_epochs is)
    patience: int = 30                   # epochs without validation improvement before stopping
    lr: float = 1e-3                     # AdamW learning rate (cosine decay to 10 % over max_epochs)
    warmup_steps: int = 20               # steps of linear learning-rate warm-up
    ref_only_steps: int = 300            # steps, first phase: reference loss alone (no synthesis, fast steps)
    weight_decay: float = 1e-4           # AdamW weight decay
    ema_decay: float = 0.995             # per-step decay of the weight EMA, reached after warm-up (0 = no EMA)
    grad_clip: float = 1.0               # gradient-norm clip (0 = none)
    w_spec: float = 1.0                  # weight of the spectral loss (linear dB, multi-resolution)
    w_mel: float = 1.0                   # weight of the mel-dB spectral term
    w_coarse: float = 1.0                # weight of the coarse spectral term (frame energy + 8 broad bands, dB)
    w_ref: float = 1.0                   # weight of the reference-parameter loss (needs a speech run)
    w_stoi: float = 0.0                  # weight of the differentiable STOI loss (0 = off)
    silence_weight: float = 0.3          # weight of frames outside the speech segment in the losses
    spec_ffts: tuple[int, ...] = (256, 512, 1024)  # STFT sizes (samples) of the multi-resolution spectral loss
    resnet_widths: tuple[int, ...] = (16, 32, 64)  # ResNet3D features per stage
    resnet_blocks: int = 1               # ResNet3D residual blocks per stage
    swin_dim: int = 32                   # Swin3D token features of the first stage
    swin_depths: tuple[int, ...] = (2, 2)  # Swin3D blocks per stage
    swin_window_t: int = 16              # frames, Swin3D temporal attention window
    rnn_hidden: int = 128                # LSTM/GRU hidden size per direction
    rnn_layers: int = 2                  # LSTM/GRU layers
    dropout: float = 0.1                 # dropout inside the decoder
    linear_components: int = 50          # PCA components of the linear baseline
    linear_passes: int = 4               # random training windows drawn per training trial (linear fit)
    device: str = "auto"                 # "auto" (GPU when available), "cpu" or "cuda"

    def __post_init__(self) -> None:
        check_option("decoder.model", self.model, MODELS)
        check_range("decoder.n_target_frames", self.n_target_frames, 1, None)
        check_range("decoder.n_lead_frames", self.n_lead_frames, 0, None)
        check_range("decoder.batch_size", self.batch_size, 1, None)
        check_range("decoder.ema_decay", self.ema_decay, 0.0, 1.0, inclusive=True)
        check_range("decoder.ref_only_steps", self.ref_only_steps, 0, None)
        check_range("decoder.warmup_steps", self.warmup_steps, 0, None)
        check_option("decoder.device", self.device, ("auto", "cpu", "cuda"))


@dataclass
class DecoderRunConfig:
    """What `neurovox train decoder` ran: prepare + split + decoder sections and the seed."""

    seed: int = 0                        # RNG seed, set once by the CLI
    prepare: PrepareConfig = field(default_factory=PrepareConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    decoder: DecoderTrainConfig = field(default_factory=DecoderTrainConfig)


def quick_settings(model: str) -> dict[str, Any]:
    """Overrides of `--quick`: small models and about 1-2 minutes of training on 2 CPU cores."""
    return {"decoder": {"max_epochs": 300, "max_minutes": 1.5, "patience": 100, "batch_size": 8, "lr": 3e-3,
                        "ref_only_steps": 100000,  # the whole quick run is the reference phase (no synthesis)
                        "resnet_widths": [8, 16, 32], "swin_dim": 16, "swin_depths": [2], "swin_window_t": 8,
                        "train_crop_frames": 64,
                        "rnn_hidden": 64, "rnn_layers": 1, "spec_ffts": [512], "linear_passes": 2,
                        "ema_decay": 0.95}}


def model_kwargs(cfg: DecoderTrainConfig) -> dict[str, Any]:
    if cfg.model == "resnet":
        return {"widths": tuple(cfg.resnet_widths), "blocks_per_stage": cfg.resnet_blocks, "dropout": cfg.dropout}
    if cfg.model == "swin":
        return {"dim": cfg.swin_dim, "depths": tuple(cfg.swin_depths), "window_t": cfg.swin_window_t,
                "dropout": cfg.dropout}
    return {"hidden": cfg.rnn_hidden, "n_layers": cfg.rnn_layers, "dropout": cfg.dropout}
