"""Evaluation: metrics, chance levels, no-neural baselines, ceiling, `evaluate_run` (cross-validation: `neurovox.cv`).

Import the submodules directly (`neurovox.evaluate.metrics`, `.chance`, `.evaluate`); the
differentiable STOI training loss is a decoder loss (`neurovox.decoders.stoi_loss`). The names below are re-exported lazily so that `import neurovox.evaluate` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "pcc_per_trial": "metrics", "pcc_per_bin": "metrics", "stoi": "metrics", "estoi": "metrics",
    "stoi_plus": "metrics", "mel_cepstral_distortion": "metrics", "bootstrap_ci": "metrics",
    "TestSet": "chance", "chance_levels": "chance", "ceiling": "chance",
    "score_trials": "chance", "evaluate_run": "evaluate", "evaluate_test_set": "evaluate",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"neurovox.evaluate.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'neurovox.evaluate' has no attribute {name!r}")
