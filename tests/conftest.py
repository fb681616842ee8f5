"""Shared test fixtures. Keep fixtures session-scoped and small: the whole suite must run in
well under 15 minutes on 2 CPU cores."""

import os

import pytest
import torch

# Tests must not depend on how many threads a machine has; 2 matches CI.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(0)
