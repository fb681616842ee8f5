"""Lightning side of exact resume (see neurovox.utils.resume): the callback that carries the global RNG
states and the stop decision through checkpoints and binds the data order to the global step, and the
checkpoint I/O that writes atomically and refuses damaged files with a RunError."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import Callback
from lightning.pytorch.plugins.io import TorchCheckpointIO

from neurovox.errors import RunError
from neurovox.utils.resume import StepSampler, load_checkpoint_file, rng_state, save_checkpoint_file, set_rng_state


class ResumeState(Callback):
    """Saves the global RNG states and the trainer's stop decision in every checkpoint and restores them on
    resume; binds a `StepSampler` to the trainer's global step."""

    KEY = "neurovox_resume"

    def __init__(self, sampler: StepSampler | None = None) -> None:
        super().__init__()
        self.sampler = sampler
        self._stop = False

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if self.sampler is not None:
            self.sampler.global_step = lambda: trainer.global_step
            if self.sampler.world_size != trainer.world_size:
                raise RuntimeError(f"the step sampler shares batches among {self.sampler.world_size} processes, "
                                   f"the trainer runs {trainer.world_size}")
            self.sampler.rank = trainer.global_rank

    def on_save_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        checkpoint[self.KEY] = {"rng": rng_state(), "should_stop": bool(trainer.should_stop)}

    def on_load_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get(self.KEY)
        if saved is None:
            raise RunError("The checkpoint being resumed has no random-generator states (written by an older "
                           "neurovox); rerun with --overwrite to start the run again.")
        set_rng_state(saved["rng"])
        self._stop = saved["should_stop"]

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        if self._stop:  # early stopping had ended the run when it was interrupted
            trainer.should_stop = True


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint I/O: write to a temporary name beside the target, fsync, rename; a checkpoint
    that cannot be read is a RunError naming the file."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        save_checkpoint_file(checkpoint, Path(path))

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        return load_checkpoint_file(Path(path))
