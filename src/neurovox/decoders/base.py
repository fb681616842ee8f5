"""The common interface of the deep neural decoders and the model registry.

Every decoder maps normalised neural windows (batch, n_frames, n_channels) to raw synthesizer controls
(batch, n_frames, n_out) on the same frame clock (`forward_frames`); `forward` keeps the last
`n_target` frames, the frames simultaneous with the audio targets (the first frames of a window are
neural lead). In causal mode output frame t depends only on input frames <= t.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from neurovox.errors import ConfigError, DataError
from neurovox.utils.check import check_option

MODEL_NAMES = ("resnet", "swin", "lstm", "gru")
GRID_MODELS = ("resnet", "swin")


class NeuralDecoder(nn.Module):
    """Base class: subclasses set `model_args` (the constructor kwargs) and implement `forward_frames`."""

    name: str = "decoder"
    causal: bool = True
    model_args: dict[str, Any]

    def forward_frames(self, neural: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, neural: torch.Tensor, n_target: int | None = None) -> torch.Tensor:
        """(batch, n_lead + n_target, n_channels) -> (batch, n_target, n_out)."""
        if neural.ndim != 3:
            raise DataError(f"{type(self).__name__} expects neural windows of shape (batch, n_frames, n_channels), "
                            f"got shape {tuple(neural.shape)}.")
        out = self.forward_frames(neural)
        return out if n_target is None else out[:, out.shape[1] - n_target:]

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


class Anticausal(NeuralDecoder):
    """Output frame t sees only neural frames >= t: a causal model run on the time-reversed window, its
    output reversed back. Reversing is exact (no arithmetic), so the causal model's bit-for-bit guarantee
    holds mirrored: changing frames < t leaves outputs >= t unchanged.

    Within a window it sees the frames up to the window's end, as the non-causal models do; the neural
    lead lies before the targets, so its last target frames have the least context.
    """

    causal = False
    anticausal = True

    def __init__(self, inner: NeuralDecoder):
        super().__init__()
        if not inner.causal:
            raise ConfigError("Anticausal wraps a causal model; build the inner model with causal=True.")
        self.inner = inner
        self.name = inner.name
        self.model_args = {**inner.model_args, "anticausal": True}

    @property
    def out(self) -> nn.Module:
        """The inner model's output layer (its bias is initialised from the training targets)."""
        return self.inner.out

    def forward_frames(self, neural: torch.Tensor) -> torch.Tensor:
        return self.inner.forward_frames(neural.flip(1)).flip(1)


def build_decoder(name: str, *, n_channels: int, n_out: int, causal: bool, layout: Any = None,
                  anticausal: bool = False, **kwargs: Any) -> NeuralDecoder:
    """Build a decoder by name ("resnet", "swin", "lstm", "gru").

    Parameters
    ----------
    n_channels : int
        Neural channels.
    n_out : int
        Outputs per frame: the synthesizer's N_RAW raw controls (target formant) or dsp.N_MELS (target mel).
    causal : bool
        Strictly causal model.
    layout : GridLayout, optional
        Required by the grid models (resnet, swin); the recurrent models use only its bad-contact mask.
    anticausal : bool
        Strictly anticausal model (`Anticausal` around the causal one); excludes `causal`.
    **kwargs
        Size arguments of the model class (see each class).
    """
    check_option("model", name, MODEL_NAMES, error=ConfigError)
    if anticausal:
        if causal:
            raise ConfigError("A decoder is causal or anticausal, not both.")
        return Anticausal(build_decoder(name, n_channels=n_channels, n_out=n_out, causal=True, layout=layout, **kwargs))
    if name == "resnet":
        from neurovox.decoders.resnet import ResNet3D
        return ResNet3D(layout=_need_layout(layout, name), n_out=n_out, causal=causal, **kwargs)
    if name == "swin":
        from neurovox.decoders.swin import Swin3D
        return Swin3D(layout=_need_layout(layout, name), n_out=n_out, causal=causal, **kwargs)
    from neurovox.decoders.lstm import RecurrentDecoder
    good = None if layout is None else list(layout.good)
    return RecurrentDecoder(n_channels=n_channels, n_out=n_out, causal=causal, cell=name, good=good, **kwargs)


def _need_layout(layout: Any, name: str) -> Any:
    if layout is None:
        raise DataError(f"The {name} model needs a grid layout of the electrodes; none could be derived. "
                        "Use --model lstm for recordings without a grid.")
    return layout


def decoder_from_args(name: str, model_args: dict[str, Any]) -> NeuralDecoder:
    """Rebuild a decoder from its saved `model_args` (layout stored as a dict)."""
    from neurovox.decoders.layout import GridLayout

    args = dict(model_args)
    if "linear_branch_lags" in args:
        from neurovox.decoders.linear_branch import WithLinearBranch

        lags, n_channels = args.pop("linear_branch_lags"), args.pop("linear_branch_channels")
        return WithLinearBranch(decoder_from_args(name, args), lags, n_channels)
    if args.pop("anticausal", False):
        return Anticausal(decoder_from_args(name, args))
    if isinstance(args.get("layout"), dict):
        args["layout"] = GridLayout.from_dict(args["layout"])
    if name == "resnet":
        from neurovox.decoders.resnet import ResNet3D
        return ResNet3D(**args)
    if name == "swin":
        from neurovox.decoders.swin import Swin3D
        return Swin3D(**args)
    from neurovox.decoders.lstm import RecurrentDecoder
    return RecurrentDecoder(**args)
