"""Time to simulate a participant (`neurovox.simulate.simulate`), medians over repeats.

small: 60 trials (~2 min of speech), 8x8 grid: high gamma only, and high gamma + raw.
full: the default participant (300 trials, ~10 min of speech), 8x8 grid and 15x15 hybrid grid.
Both sizes time the default (realistic) encoding model and the linear one (docs/simulator.md).
"""

from __future__ import annotations

import statistics
import time


def _time(cfg, kinds, repeats: int) -> tuple[float, float]:
    from neurovox.simulate import simulate

    times = []
    for r in range(repeats):
        t0 = time.perf_counter()
        recs, _ = simulate(cfg, r, kinds)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), next(iter(recs.values())).duration_s


def run(size: str) -> list[dict]:
    from neurovox.simulate import SimulateConfig, load_corpus, simulate

    load_corpus()                                   # decode the shipped FLACs once (cached)
    simulate(SimulateConfig(n_trials=5), 0)         # warm imports (librosa mel filterbank, torch stft)
    if size == "small":
        cases = [("grid8x8, 60 trials, realistic", SimulateConfig(n_trials=60), ("high_gamma",), 3),
                 ("grid8x8, 60 trials, realistic", SimulateConfig(n_trials=60), ("high_gamma", "raw"), 3),
                 ("grid8x8, 60 trials, linear", SimulateConfig(n_trials=60, encoding="linear"), ("high_gamma",), 3)]
    else:
        cases = [("grid8x8, default (300 trials), realistic", SimulateConfig(), ("high_gamma",), 3),
                 ("grid8x8, default (300 trials), realistic", SimulateConfig(), ("high_gamma", "raw"), 2),
                 ("grid8x8, default (300 trials), linear", SimulateConfig(encoding="linear"), ("high_gamma", "raw"), 2),
                 ("hybrid225, default (300 trials), realistic", SimulateConfig(layout="hybrid225"), ("high_gamma",), 2)]
    rows = []
    for name, cfg, kinds, repeats in cases:
        seconds, duration_s = _time(cfg, kinds, repeats)
        case = f"{name}, {' + '.join(kinds)}"
        rows.append({"benchmark": "simulate", "case": case, "metric": "time", "value": seconds, "unit": "s",
                     "note": f"median of {repeats}; {duration_s:.0f} s of session"})
        rows.append({"benchmark": "simulate", "case": case, "metric": "real-time factor",
                     "value": duration_s / seconds, "unit": "x", "note": "session seconds per compute second"})
    return rows
