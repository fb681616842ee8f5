"""Evaluation: metrics, chance levels, ceiling, `evaluate_run`, cross-validation.

Import the submodules directly (`neurovox.evaluate.metrics`, `.chance`, `.evaluate`, `.cv`,
`.stoi_loss`); the names below are re-exported lazily so that `import neurovox.evaluate` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "pcc_per_trial": "metrics", "pcc_per_bin": "metrics", "stoi": "metrics", "estoi": "metrics",
    "stoi_plus": "metrics", "mel_cepstral_distortion": "metrics", "bootstrap_ci": "metrics",
    "stoi_loss": "stoi_loss", "TestSet": "chance", "chance_levels": "chance", "ceiling": "chance",
    "score_trials": "chance", "evaluate_run": "evaluate", "evaluate_test_set": "evaluate", "run_cv": "cv",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"neurovox.evaluate.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'neurovox.evaluate' has no attribute {name!r}")
