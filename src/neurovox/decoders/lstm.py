"""Layout-free recurrent decoder (LSTM or GRU): serves sEEG and any electrode arrangement.

    neural (batch, n_frames, n_channels), bad contacts zeroed
      -> Linear + LayerNorm + GELU per frame -> (batch, n_frames, hidden)
      -> LSTM/GRU, unidirectional (causal) or bidirectional (non-causal)
      -> Linear -> (batch, n_frames, n_out)

The causal model carries its hidden state from frame to frame, so streaming (`init_state`/`step`)
needs no window at all.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from neurovox.decoders.base import NeuralDecoder
from neurovox.decoders.blocks import init_output_layer
from neurovox.utils.check import check_option


class RecurrentDecoder(NeuralDecoder):
    """LSTM/GRU neural decoder.

    Parameters
    ----------
    n_channels : int
        Neural channels.
    n_out : int
        Outputs per frame: the synthesizer's raw controls (target formant) or standardised mel bins (target mel).
    causal : bool
        Unidirectional (causal) or bidirectional recurrence.
    cell : {"lstm", "gru"}
        Recurrent cell.
    hidden : int
        Hidden size (per direction).
    n_layers : int
        Stacked recurrent layers.
    dropout : float
        Dropout on the input projection and between recurrent layers.
    good : list of bool, optional
        Good-contact mask (bad contacts are zeroed).
    """

    def __init__(self, n_channels: int, n_out: int, causal: bool = True, cell: str = "lstm", hidden: int = 128,
                 n_layers: int = 2, dropout: float = 0.1, good: list[bool] | None = None):
        super().__init__()
        check_option("cell", cell, ("lstm", "gru"))
        self.name = cell
        self.causal = causal
        self.model_args: dict[str, Any] = {"n_channels": n_channels, "n_out": n_out, "causal": causal, "cell": cell,
                                           "hidden": hidden, "n_layers": n_layers, "dropout": dropout,
                                           "good": None if good is None else [bool(g) for g in good]}
        g = torch.ones(n_channels) if good is None else torch.as_tensor(good, dtype=torch.float32)
        self.register_buffer("good", g, persistent=False)
        self.proj = nn.Linear(n_channels, hidden)
        self.norm = nn.LayerNorm(hidden)
        self.drop = nn.Dropout(dropout)
        rnn_cls = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = rnn_cls(hidden, hidden, num_layers=n_layers, batch_first=True, bidirectional=not causal,
                           dropout=dropout if n_layers > 1 else 0.0)
        self.out = nn.Linear(hidden * (1 if causal else 2), n_out)
        init_output_layer(self.out)

    def _embed(self, neural: torch.Tensor) -> torch.Tensor:
        return self.drop(F.gelu(self.norm(self.proj(neural * self.good))))

    def forward_frames(self, neural: torch.Tensor) -> torch.Tensor:
        """(batch, n_frames, n_channels) -> (batch, n_frames, n_out)."""
        y, _ = self.rnn(self._embed(neural))
        return self.out(y)

    # Streaming ---------------------------------------------------------------------------------

    def init_state(self, neural_frame: torch.Tensor) -> Any:
        """Zero hidden state for frames of shape (batch, n_channels)."""
        if not self.causal:
            raise RuntimeError("streaming needs a causal RecurrentDecoder (causal=True)")
        h = neural_frame.new_zeros(self.rnn.num_layers, neural_frame.shape[0], self.rnn.hidden_size)
        return (h, h.clone()) if isinstance(self.rnn, nn.LSTM) else h

    @torch.no_grad()
    def step(self, neural_frame: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        """One frame: (batch, n_channels) -> outputs (batch, n_out) and the carried hidden state."""
        y, state = self.rnn(self._embed(neural_frame[:, None]), state)
        return self.out(y[:, 0]), state
