"""`neurovox sweep`: a grid of participants x decoders x folds as jobs, and its aggregated report."""

from neurovox.sweep.driver import Cell, SweepGrid, expand, load_grid, make_executor, run_sweep
from neurovox.sweep.report import comparisons, write_sweep_report

__all__ = ["Cell", "SweepGrid", "comparisons", "expand", "load_grid", "make_executor", "run_sweep",
           "write_sweep_report"]
