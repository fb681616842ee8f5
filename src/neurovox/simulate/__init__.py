"""Simulated participants with a known ground truth (speech corpus, encoding model, layouts).

    from neurovox.simulate import SimulateConfig, simulate_participant, simulate
    rec, gt = simulate_participant(SimulateConfig(n_trials=60, layout="grid8x8"), 0)   # high gamma, 125 Hz
    recs, gt = simulate(SimulateConfig(), 0, ("high_gamma", "raw"))                 # both from one truth
    gt.envelope      # (n_frames, n_channels) noiseless high gamma; gt.roles, gt.drive("articulatory"), ...
    rec, gt = simulate_participant(SimulateConfig(encoding="linear"), 0)           # the linear model, for comparison
    rec, gt = simulate_participant(SimulateConfig(), 0, kind="raw", keep_raw_hg_component=True)
    ground_truth_high_gamma(gt, HighGammaConfig(band_high_hz=170))  # the truth a pipeline should recover

`neurovox simulate --out DIR` writes the files (Flinker HDF5, SWPD iBIDS/NWB, ground truth, config).
The speech comes from the shipped corpus (`load_corpus`, rendered by scripts/render_corpus.py with
flite and espeak-ng voices); the encoding models are documented in docs/simulator.md,
`neurovox.simulate.realistic` (default) and `neurovox.simulate.neural` (linear).
"""

import lazy_loader

# Imported on first use, so that `neurovox.simulate.config` (read by the CLI to build `neurovox --help`) does
# not pull in torch and scipy through the encoding models.
__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "config": ["ENCODINGS", "LAYOUTS", "TASKS", "SimulateConfig"],
    "corpus": ["Corpus", "Utterance", "load_corpus"],
    "layouts": ["Layout", "make_layout"],
    "participant": ["GroundTruth", "simulate", "simulate_participant"],
    "speech": ["speech_feature"],
    "truth": ["encoding_strength", "ground_truth_high_gamma"],
})
