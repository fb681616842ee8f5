"""A deep decoder with a linear branch: the deep model's output averaged with the linear baseline's.

    neural (batch, n_frames, n_channels)
      -> deep decoder (ResNet3D, Swin3D, LSTM/GRU)                   -> d (batch, n_frames, n_out)
      -> lagged linear map  l(t) = sum_i W_i x(t + lag_i) + b        -> l (batch, n_frames, n_out)
      -> (1 - w) d + w l,  w in [0, 1] chosen on the validation trials

The linear branch is the linear baseline (`neurovox.decoders.linear`: the same lags, PCA size and ridge
penalty chosen on the validation trials), fitted in closed form on the training windows, folded into one
weight per lag and frozen (buffers, not parameters). The deep model trains alone (w = 0 during training);
afterwards w is the value of `MIX_GRID` with the best tilt-removed PCC on the validation trials.

Why: on a few hundred trials the deep models and ridge regression make partly independent errors, so their
average beats both (BENCHMARKS.md, "Deep decoders with a linear branch"); training the network on the residual
of the frozen branch instead gained about half as much on a development participant. What the deep part adds
is measured directly: the decoder table compares each deep decoder with the linear baseline of the same
direction on the same test trials, and DONE records the validation score of the deep model alone, the
branch alone and the mix.

The branch keeps the direction of the model it is added to: causal lags (-400..0 ms) for a causal model,
anticausal lags (0..+400 ms) for an anticausal one, so the causal guarantee holds for the sum. Streaming keeps
the last 400 ms of frames beside the deep model's own state.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from neurovox.decoders.base import NeuralDecoder
from neurovox.errors import ConfigError

MIX_GRID = tuple(i / 10 for i in range(11))  # weights of the linear branch tried on validation


class WithLinearBranch(NeuralDecoder):
    """`inner` mixed with a frozen lagged linear map of the same input, weight `branch_mix` (0 = inner alone).

    Parameters
    ----------
    inner : NeuralDecoder
        The deep decoder.
    lags_frames : list of int
        Frame offsets of the linear branch (negative = past), in the linear baseline's order.
    n_channels : int
        Neural channels.
    """

    def __init__(self, inner: NeuralDecoder, lags_frames: list[int], n_channels: int):
        super().__init__()
        self.inner = inner
        self.name = inner.name
        self.causal = inner.causal
        self.anticausal = bool(getattr(inner, "anticausal", False))
        lags = [int(v) for v in lags_frames]
        if self.causal and max(lags) > 0 or self.anticausal and min(lags) < 0:
            raise ConfigError(f"A linear branch with lags {lags} (frames) would break the "
                              f"{'causal' if self.causal else 'anticausal'} {inner.name} model it is added to.")
        self.lags = lags
        self.model_args = {**inner.model_args, "linear_branch_lags": lags, "linear_branch_channels": int(n_channels)}
        n_out = inner.out.out_features
        self.register_buffer("branch_weight", torch.zeros(len(lags), n_out, n_channels))  # (n_lags, n_out, n_channels)
        self.register_buffer("branch_bias", torch.zeros(n_out))
        self.register_buffer("branch_mix", torch.zeros(()))                                 # w, set after training

    @property
    def out(self) -> nn.Module:
        """The deep model's output layer."""
        return self.inner.out

    @torch.no_grad()
    def set_from_baseline(self, baseline: Any, mel_mean_db: np.ndarray, mel_sd_db: np.ndarray) -> None:
        """Fold a fitted `LinearBaseline` (stacked lags -> PCA -> ridge, mel dB) into the branch, in the deep
        model's output units (mel dB standardised with the training mean and SD of each bin, (80,) each)."""
        state = baseline.state
        if [int(v) for v in state["lags_frames"]] != self.lags:
            raise ConfigError(f"The linear baseline's lags {list(state['lags_frames'])} differ from the branch's {self.lags}.")
        w = state["coef"].astype(np.float64) @ state["pca_components"].astype(np.float64)       # (80, n_lags * c)
        b = state["intercept"].astype(np.float64) - w @ state["pca_mean"].astype(np.float64)    # (80,)
        n_lags, n_out, c = self.branch_weight.shape
        w = w.reshape(n_out, n_lags, c) * np.asarray(state["good"], np.float64)[None, None, :]  # bad contacts: 0
        sd = np.asarray(mel_sd_db, np.float64)
        self.branch_weight.copy_(torch.from_numpy(w.transpose(1, 0, 2) / sd[None, :, None]))
        self.branch_bias.copy_(torch.from_numpy((b - np.asarray(mel_mean_db, np.float64)) / sd))

    @torch.no_grad()
    def choose_mix(self, neural: torch.Tensor, mel_db: torch.Tensor, speech_mask: torch.Tensor,
                   mel_mean_db: torch.Tensor, mel_sd_db: torch.Tensor, tilt_db: torch.Tensor) -> dict[str, float]:
        """Set `branch_mix` to the weight in `MIX_GRID` with the best tilt-removed PCC on validation windows.

        neural (n, n_lead + n_target, n_channels); mel_db (n, n_target, 80) and speech_mask (n, n_target) of the
        targets; mel_mean_db, mel_sd_db (80,) the output scale; tilt_db (80,) the training speech spectrum that
        the tilt-removed PCC subtracts. Returns the chosen weight and the validation score of each weight.
        """
        from neurovox.decoders.lightning_module import batch_pcc

        was_training = self.training
        self.eval()
        n_target = mel_db.shape[1]
        deep = self.inner(neural, n_target)
        linear = self.branch(neural)[:, -n_target:]
        scores = {}
        for w in MIX_GRID:
            pred = ((1.0 - w) * deep + w * linear) * mel_sd_db + mel_mean_db
            scores[w] = float(batch_pcc(pred - tilt_db, mel_db - tilt_db, speech_mask))
        best = max(scores, key=scores.get)
        self.branch_mix.fill_(best)
        self.train(was_training)
        return {"weight": best, "val_pcc_tilt": scores[best], "val_pcc_tilt_deep_alone": scores[0.0],
                "val_pcc_tilt_linear_alone": scores[1.0]}

    def branch(self, neural: torch.Tensor) -> torch.Tensor:
        """The linear branch alone: (batch, n_frames, n_channels) -> (batch, n_frames, n_out); frames outside
        the window count as zero (the normalised mean), as in the linear baseline."""
        n = neural.shape[1]
        y = self.branch_bias.expand(neural.shape[0], n, -1).clone()
        for lag, w in zip(self.lags, self.branch_weight):
            if abs(lag) >= n:
                continue
            if lag >= 0:
                y[:, : n - lag] += neural[:, lag:] @ w.T
            else:
                y[:, -lag:] += neural[:, : n + lag] @ w.T
        return y

    def forward_frames(self, neural: torch.Tensor) -> torch.Tensor:
        return self.mix(self.inner.forward_frames(neural), self.branch(neural))

    def mix(self, deep: torch.Tensor, linear: torch.Tensor) -> torch.Tensor:
        return (1.0 - self.branch_mix) * deep + self.branch_mix * linear

    # Streaming (causal models) ---------------------------------------------------------------------

    def init_state(self, neural_frame: torch.Tensor) -> Any:
        """The deep model's state and the last frames the branch reads, zeros before the stream starts."""
        if not hasattr(self.inner, "init_state"):
            raise ConfigError(f"The {self.name} model has no streaming implementation; stream a causal resnet, "
                              "lstm or gru model.")
        n_past = -min(self.lags)
        return self.inner.init_state(neural_frame), neural_frame.new_zeros(neural_frame.shape[0], n_past + 1,
                                                                           neural_frame.shape[1])

    @torch.no_grad()
    def step(self, neural_frame: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        """One frame (batch, n_channels) -> (batch, n_out), carrying both states."""
        inner_state, past = state
        past = torch.cat([past[:, 1:], neural_frame[:, None]], dim=1)        # past[:, -1] is this frame
        out, inner_state = self.inner.step(neural_frame, inner_state)
        y = self.branch_bias + sum(past[:, lag - 1] @ w.T for lag, w in zip(self.lags, self.branch_weight))
        return self.mix(out, y), (inner_state, past)
