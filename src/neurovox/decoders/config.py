"""Configuration of `neurovox train decoder`: the split, the decoder training section and the run config
(prepare + split + decoder + seed), the `--quick` overrides and the constructor arguments of each model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from neurovox.preprocess.config import PrepareConfig
from neurovox.preprocess.splits import SplitConfig
from neurovox.errors import ConfigError
from neurovox.utils.check import check_option, check_range

MODELS = ("linear", "resnet", "swin", "lstm", "gru")
TARGETS = ("mel", "formant")


@dataclass
class DecoderTrainConfig:
    """Stage-2 decoder training (flat; sizes of every model live here, the chosen one is used)."""

    model: str = "lstm"                  # decoder: "linear" | "resnet" | "swin" | "lstm" | "gru"; non-causal, the
                                         # LSTM is ahead of the ResNet3D on both benchmark participants, at a quarter
                                         # of its training time (BENCHMARKS.md, decoder tables)
    causal: bool = False                 # strictly causal model (output frame t sees neural frames <= t)
    anticausal: bool = False             # strictly anticausal model (output frame t sees neural frames >= t): the
                                         # mirror of causal, for the reference paper's comparison; cannot stream
    target: str = "mel"                  # what the deep decoder outputs: "mel" (80-bin mel dB, Griffin-Lim vocoder)
                                         # or "formant" (18 synthesizer parameters through the frozen formant
                                         # synthesizer; interpretable, but bounded by its resynthesis ceiling)
    linear_branch: bool = True           # target mel: the deep decoder's output is mixed with a frozen linear
                                         # branch (the linear baseline of the same direction, fitted on the
                                         # training windows), weight chosen on the validation trials
                                         # (decoders/linear_branch.py); the formant head has no mel to mix it with
    preset: str = "small"                # model sizes: "small" (CPU-sized, the *_widths/... fields below) or
                                         # "paper" (the reference implementation's sizes, for GPUs; PAPER_SIZES)
    n_target_frames: int = 128           # frames (8 ms) of audio target per window
    n_lead_frames: int = 16              # frames of neural lead before the first target frame
    batch_size: int = 16                 # windows per optimisation step
    train_crop_frames: int = 0           # frames, random target crop of each training batch (0 = whole window)
    max_epochs: int = 30                 # epochs, the budget (early stopping may end sooner); never wall clock,
                                         # so a run takes the same steps on any machine. The mel target's
                                         # validation PCC plateaus after ~15-20 of 30 epochs on the default
                                         # participant (BENCHMARKS.md, "Decoder training budgets")
    max_steps: int = 0                   # optimiser steps, a cap on top of max_epochs (0 = none); --quick uses it so
                                         # that small and large recordings get the same short budget
    patience: int = 10                   # epochs without validation improvement before stopping
    lr: float = 1e-3                     # AdamW learning rate (cosine decay to 10 % over max_epochs)
    warmup_steps: int = 20               # steps of linear learning-rate warm-up
    ref_only_steps: int = 300            # steps, first phase: reference loss alone (no synthesis, fast steps)
    weight_decay: float = 1e-4           # AdamW weight decay
    ema_decay: float = 0.995             # per-step decay of the weight EMA, reached after warm-up (0 = no EMA)
    grad_clip: float = 1.0               # gradient-norm clip (0 = none)
    aug_gain_sd: float = 0.1             # training augmentation: SD of a per-window, per-channel gain factor around 1
    aug_channel_dropout: float = 0.1     # training augmentation: probability that a channel is zeroed in a window
                                         # (both constant over the window, so they keep causality; windows also
                                         # start at a random frame around each word: time jitter)
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
    rnn_hidden: int = 256                # LSTM/GRU hidden size per direction; 256 beat 128 on a development
                                         # participant causal and non-causal alike, at ~3x the training cost
                                         # (BENCHMARKS.md, "Deep decoders with a linear branch")
    rnn_layers: int = 2                  # LSTM/GRU layers
    dropout: float = 0.1                 # dropout inside the decoder
    linear_passes: int = 4               # random training windows drawn per training trial (linear fit)
    device: str = "auto"                 # "auto" (GPU when available), "cpu" or "cuda"
    devices: int = 1                     # processes per node (GPUs, or CPU processes): > 1 trains with DDP, each
                                         # process taking batch_size / (devices x num_nodes) windows of every step
    num_nodes: int = 1                   # machines (DDP across nodes, e.g. SLURM with one task per device)
    precision: str = "32-true"           # Lightning precision: "32-true", or on GPUs "bf16-mixed" / "16-mixed"

    def __post_init__(self) -> None:
        check_option("decoder.model", self.model, MODELS)
        check_option("decoder.target", self.target, TARGETS)
        check_option("decoder.preset", self.preset, ("small", "paper"))
        if self.causal and self.anticausal:
            raise ConfigError("decoder.causal and decoder.anticausal are both true: a model sees either only the past "
                              "(--causal) or only the future (--anticausal) of each output frame; choose one.")
        check_range("decoder.aug_gain_sd", self.aug_gain_sd, 0.0, None)
        check_range("decoder.aug_channel_dropout", self.aug_channel_dropout, 0.0, 1.0)
        if self.preset == "paper":
            self._apply_paper_sizes()
        check_range("decoder.n_target_frames", self.n_target_frames, 1, None)
        check_range("decoder.n_lead_frames", self.n_lead_frames, 0, None)
        check_range("decoder.batch_size", self.batch_size, 1, None)
        check_range("decoder.max_steps", self.max_steps, 0, None)
        check_range("decoder.ema_decay", self.ema_decay, 0.0, 1.0, inclusive=True)
        check_range("decoder.ref_only_steps", self.ref_only_steps, 0, None)
        check_range("decoder.warmup_steps", self.warmup_steps, 0, None)
        check_option("decoder.device", self.device, ("auto", "cpu", "cuda"))
        check_range("decoder.devices", self.devices, 1, None)
        check_option("decoder.precision", self.precision, ("32-true", "bf16-mixed", "16-mixed"))
        check_range("decoder.num_nodes", self.num_nodes, 1, None)
        if self.batch_size % (self.devices * self.num_nodes):
            raise ConfigError(f"decoder.batch_size ({self.batch_size}) must be a multiple of decoder.devices x "
                              f"decoder.num_nodes ({self.devices} x {self.num_nodes}): every process takes an equal "
                              "share of each step's windows.")

    def _apply_paper_sizes(self) -> None:
        """preset=paper sets the size fields; a size also set by hand would be silently overridden, so it is
        refused (config.yaml of a paper run holds the paper sizes, which pass this check when reloaded)."""
        small = DecoderTrainConfig.__dataclass_fields__
        for key, value in PAPER_SIZES.items():
            now = getattr(self, key)
            now = tuple(now) if isinstance(now, list) else now
            if now != small[key].default and now != value:
                raise ConfigError(f"decoder.preset=paper sets decoder.{key}={value!r}, but decoder.{key}={now!r} was "
                                  "also given; drop one of the two.")
            setattr(self, key, value)


# The reference implementation's decoder hyperparameters (Chen et al. 2024, github.com/flinkerlab/
# neural_speech_decoding at fb20e56, networks.py), for GPU users: `--set decoder.preset=paper`. Its ResNet has 4
# stages of 32/64/128/256 features, one block each (4.80 M parameters there, 3.80 M here: ours keeps time
# unstrided and has no upsampling head); its Swin embeds 48 features with depths 2/2/6/2 (7.69 M there,
# 4.77 M here); its LSTM is 3 bidirectional layers of 128 (1.07 M there, 1.08 M here). Their cost on CPU:
# BENCHMARKS.md, "Decoder presets".
PAPER_SIZES: dict[str, Any] = {"resnet_widths": (32, 64, 128, 256), "resnet_blocks": 1,
                               "swin_dim": 48, "swin_depths": (2, 2, 6, 2), "rnn_hidden": 128, "rnn_layers": 3}


@dataclass
class DecoderRunConfig:
    """What `neurovox train decoder` ran: prepare + split + decoder sections and the seed."""

    seed: int = 0                        # RNG seed, set once by the CLI
    prepare: PrepareConfig = field(default_factory=PrepareConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    decoder: DecoderTrainConfig = field(default_factory=DecoderTrainConfig)


QUICK_STEPS = 240  # optimiser steps of `--quick` at batch 8 (~1.5 min for the ResNet on 2 idle cores)


def quick_settings(model: str) -> dict[str, Any]:
    """Overrides of `--quick`: QUICK_STEPS steps at batch 8, whatever the recording's size (the epochs are a
    high bound; early stopping is off: the budget decides). The default sizes, except the LSTM/GRU's hidden
    size of 128 (a quarter of the default's recurrent cost, so that `demo --quick` stays under 4 minutes)."""
    return {"decoder": {"max_steps": QUICK_STEPS, "max_epochs": 1000, "patience": 1000, "batch_size": 8,
                        "ema_decay": 0.95, "train_crop_frames": 64, "spec_ffts": [512], "linear_passes": 2,
                        "rnn_hidden": 128}}


def model_kwargs(cfg: DecoderTrainConfig) -> dict[str, Any]:
    if cfg.model == "resnet":
        return {"widths": tuple(cfg.resnet_widths), "blocks_per_stage": cfg.resnet_blocks, "dropout": cfg.dropout}
    if cfg.model == "swin":
        return {"dim": cfg.swin_dim, "depths": tuple(cfg.swin_depths), "window_t": cfg.swin_window_t,
                "dropout": cfg.dropout}
    return {"hidden": cfg.rnn_hidden, "n_layers": cfg.rnn_layers, "dropout": cfg.dropout}
