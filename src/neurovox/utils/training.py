"""What every trainer shares: the learning-rate schedule, the EMA of the weights, the device choice.

The speech model, the decoders and the diffusion prior all train with AdamW under one schedule (linear
warm-up, then cosine decay to `LR_FLOOR` of the peak at the last step), keep an exponential moving
average of their weights whose decay warms up with the step (so short runs still move), and choose
their device from one setting ("auto" | "cpu" | "cuda").
"""

from __future__ import annotations

import math

from typing import Any

import torch

from neurovox.errors import ConfigError

LR_FLOOR = 0.1  # fraction of the peak learning rate reached at the last step


def lr_factor(step: int, total_steps: int, warmup_steps: int) -> float:
    """Multiplier of the peak learning rate at optimiser step `step` (0-based): linear warm-up over
    `warmup_steps`, then cosine decay to LR_FLOOR at `total_steps`; a pure function of the step."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return LR_FLOOR + (1.0 - LR_FLOOR) * 0.5 * (1.0 + math.cos(math.pi * progress))


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, step: int, max_decay: float) -> float:
    """Move `ema`'s parameters toward `model`'s; returns the decay used.

    The decay is min(max_decay, (1 + step) / (10 + step)): 0.1 at the first step, so the average forgets
    its random initialisation quickly, approaching `max_decay` as training goes on.
    """
    decay = min(max_decay, (1.0 + step) / (10.0 + step))
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p, 1.0 - decay)
    return decay


def choose_device(setting: str, key: str) -> str:
    """"cuda" or "cpu" for a device setting "auto" (the GPU when there is one) | "cpu" | "cuda".

    `key` names the setting in errors, e.g. "decoder.device"."""
    if setting not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"{key} must be 'auto', 'cpu' or 'cuda', got {setting!r}.")
    if setting == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{key} is 'cuda' but no CUDA GPU is visible; use --set {key}=auto or cpu.")
    if setting == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return setting


def ddp_settings(devices: int, num_nodes: int) -> dict[str, Any]:
    """Lightning Trainer arguments for `devices` processes on each of `num_nodes` machines: DDP (NCCL on GPUs,
    gloo on CPUs) when there is more than one process. With the "ddp" strategy Lightning starts the other
    processes by running the same command again (or takes SLURM's tasks); everything but training itself runs in
    each, and only the process with `trainer.is_global_zero` writes the run's results."""
    if devices * num_nodes == 1:
        return {"devices": 1, "num_nodes": 1}
    return {"devices": devices, "num_nodes": num_nodes, "strategy": "ddp"}
