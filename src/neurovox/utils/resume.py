"""Exact resume of Lightning training: an interrupted run, rerun, ends with the same weights as one that
never stopped (bit for bit on CPU).

Everything random in a training run must either be a pure function of (seed, position in the run) or
be saved in the checkpoint:

- data order and random window starts: `step_loader` (a pure function of the seed and the global step
  at which an epoch's iteration starts, so a run resumed mid-epoch skips exactly the batches it has
  done and draws the same windows);
- dropout and anything else on the global generators (torch, numpy, python): `rng_state` is saved in
  every checkpoint and restored on resume (for Lightning by `ResumeState` in utils/resume_lightning.py,
  together with the early-stopping decision);
- weights, EMA weights (a submodule), optimiser, scheduler, callbacks and loop counters: Lightning.

Checkpoints are written by `save_checkpoint_file` (for Lightning through `AtomicCheckpointIO`) to a
temporary name in the same directory, synced and renamed. (Lightning 2.6's own writer stages a checkpoint in the system temporary directory and moves it
into place; when that directory is on another file system the move is a copy, and a kill during it
leaves a truncated file under the final name.) A checkpoint that cannot be read raises a RunError that
says which file and what to do.

Results are bit-for-bit repeatable on CPU for the same torch build and thread count; a different
`torch.get_num_threads()` changes the order of reductions and so the last bits (recorded in run.json).
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from neurovox.errors import ConfigError, RunError
from neurovox.utils.files import atomic_path

_MIX = 0x9E3779B97F4A7C15  # odd 64-bit constant (golden ratio): spreads consecutive seeds apart


def mix_seed(*parts: int) -> int:
    """A 63-bit seed from integers (seed, epoch, position, ...), scrambled so that neighbouring tuples
    give unrelated random streams."""
    h = 0
    for p in parts:
        h = ((h ^ (int(p) & 0xFFFFFFFFFFFFFFFF)) * _MIX + 0x632BE59BD9B4E019) & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 29
    return h & 0x7FFFFFFFFFFFFFFF


class StepSampler(Sampler):
    """Shuffled item keys ``(epoch, position, index)`` whose order depends only on (seed, global step).

    Each iteration covers the rest of the epoch that contains the current global step (one optimiser
    step per batch): from scratch, a whole epoch; resumed at step s, epoch s // n_batches from batch
    s % n_batches on. The permutation of epoch e is ``randperm(n_items)`` seeded by (seed, e).
    `global_step` is bound to the trainer by `ResumeState`; unbound, iteration starts at step 0.

    Under DDP (`world_size` processes, `rank` bound by `ResumeState`) every step's batch of `batch_size`
    items is the one a single process would draw, shared out: process r takes its positions r, r + W, ...
    (batch_size / W items); an epoch then ends on its last whole batch, so that no process waits on an empty
    one.
    """

    def __init__(self, n_items: int, batch_size: int, seed: int, world_size: int = 1) -> None:
        self.n_items, self.batch_size, self.seed = int(n_items), int(batch_size), int(seed)
        self.world_size, self.rank = int(world_size), 0
        if self.world_size > 1 and (self.batch_size % self.world_size or self.n_items < self.batch_size):
            raise ConfigError(f"DDP over {self.world_size} processes needs a batch size that they share equally and "
                              f"at least one whole batch of training windows; got batch {self.batch_size}, "
                              f"{self.n_items} windows.")
        self.global_step: Callable[[], int] = lambda: 0

    @property
    def n_batches(self) -> int:
        if self.world_size > 1:
            return self.n_items // self.batch_size
        return max(1, -(-self.n_items // self.batch_size))

    def order(self, epoch: int) -> torch.Tensor:
        """Item indices of epoch `epoch`, shape (n_items,)."""
        return torch.randperm(self.n_items, generator=torch.Generator().manual_seed(mix_seed(self.seed, epoch)))

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        epoch, batch = divmod(int(self.global_step()), self.n_batches)
        order = self.order(epoch).tolist()
        end = self.n_items if self.world_size == 1 else self.n_batches * self.batch_size
        for pos in range(batch * self.batch_size + self.rank, end, self.world_size):
            yield epoch, pos, order[pos]

    def __len__(self) -> int:
        return self.n_items if self.world_size == 1 else self.n_batches * self.batch_size // self.world_size


class SeededItems(Dataset):
    """Item ``(epoch, position, index)`` = ``dataset[index]`` drawn with ``dataset.generator`` seeded by
    (seed, epoch, position): the random window start of an item does not depend on what came before."""

    def __init__(self, dataset: Any, seed: int) -> None:
        self.dataset, self.seed = dataset, int(seed)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int, int]) -> Any:
        epoch, pos, i = key
        own = self.dataset.generator
        self.dataset.generator = torch.Generator().manual_seed(mix_seed(self.seed, epoch, pos))
        try:
            return self.dataset[i]
        finally:
            self.dataset.generator = own


def step_loader(dataset: Any, batch_size: int, seed: int, world_size: int = 1) -> DataLoader:
    """Shuffling training loader over a WindowDataset whose batches are a pure function of (seed, global
    step) (`StepSampler`, `SeededItems`); num_workers = 0 (see `neurovox.preprocess.make_loader`). Under DDP
    each of the `world_size` processes loads batch_size / world_size windows of every step."""
    sampler = StepSampler(len(dataset), batch_size, seed, world_size)
    # A loader generator keeps DataLoader's per-iterator seed draw off the global torch generator.
    return DataLoader(SeededItems(dataset, seed), batch_size=batch_size // world_size, sampler=sampler, num_workers=0,
                      drop_last=False, generator=torch.Generator().manual_seed(seed))


def plain_loader(dataset: Any, batch_size: int) -> DataLoader:
    """Unshuffled (validation) loader that draws nothing from the global torch generator."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0,
                      generator=torch.Generator().manual_seed(0))


def rng_state() -> dict[str, Any]:
    """States of the global generators (python, numpy, torch CPU and CUDA)."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint_file(obj: Any, path: Path) -> None:
    """torch.save `obj` to `path` atomically (temporary name, fsync, rename)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())


def load_checkpoint_file(path: Path) -> dict[str, Any]:
    """torch.load a checkpoint of ours (trusted: weights_only=False); RunError if it is damaged."""
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise
    except Exception as exc:  # torch raises RuntimeError, EOFError, UnpicklingError... for a damaged file
        raise RunError(f"Checkpoint {str(path)!r} cannot be read ({type(exc).__name__}: {exc}); it was probably cut "
                       "short by a crash. Delete it to resume from scratch in the same run directory, or rerun "
                       "with --overwrite.") from None


def resume_from(last: Path) -> str | None:
    """`ckpt_path` for `Trainer.fit`: the last checkpoint of an interrupted run (announced), else None."""
    if not last.exists():
        return None
    print(f"resuming from {last}", flush=True)
    return str(last)


def remove_stale_temporaries(directory: Path) -> None:
    """Delete temporary files that killed processes left behind (`atomic_path` names: .NAME.tmp-PID)."""
    if directory.is_dir():
        for p in directory.glob(".*.tmp-*"):
            if p.is_file():
                p.unlink()
