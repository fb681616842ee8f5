"""neurovox.preprocess: raw -> high gamma (offline / causal streaming), speech features aligned to
the 125 Hz frames, trials / windows / splits, PyTorch datasets, the on-disk feature cache, and bad
channels found automatically (flat, noisy, spiky).

    prepared = prepare(rec, PrepareConfig(), cache_dir)          # cached
    split = make_split(prepared, "flinker")
    norm = Normalizer().fit(prepared.neural, split.train_frame_mask)
    train = WindowDataset(prepared, split, norm, "train", generator=torch.Generator().manual_seed(0))
"""

import lazy_loader

# Imported on first use, so that `neurovox.preprocess.config` (read by the CLI to build `neurovox --help`) does
# not pull in torch and scipy.
__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "bad_channels": ["BadChannelReport", "find_bad_channels", "with_bad_channels"],
    "config": ["HighGammaConfig", "PrepareConfig"],
    "datasets": ["WindowDataset", "make_loader", "stack_windows"],
    "highgamma": ["CausalHighGamma", "extract_high_gamma"],
    "prepared": ["Prepared", "default_cache_dir", "load_prepared", "prepare", "save_prepared"],
    "reference": ["make_reference"],
    "speech": ["SpeechFeatures", "compute_speech_features", "whisper_log_mel"],
    "splits": ["Normalizer", "Split", "make_split"],
})
