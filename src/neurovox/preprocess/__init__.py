"""neurovox.preprocess: raw -> high gamma (offline / causal streaming), speech features aligned to
the 125 Hz frames, trials / windows / splits, PyTorch datasets, the on-disk feature cache, and bad
channels found automatically (flat, noisy, spiky).

    prepared = prepare(rec, PrepareConfig(), cache_dir)          # cached
    split = make_split(prepared, "flinker")
    norm = Normalizer().fit(prepared.neural, split.train_frame_mask)
    train = WindowDataset(prepared, split, norm, "train", generator=torch.Generator().manual_seed(0))
"""

from neurovox.preprocess.bad_channels import BadChannelReport, find_bad_channels, with_bad_channels
from neurovox.preprocess.config import HighGammaConfig, PrepareConfig
from neurovox.preprocess.datasets import WindowDataset, make_loader, stack_windows
from neurovox.preprocess.highgamma import CausalHighGamma, extract_high_gamma
from neurovox.preprocess.prepared import Prepared, default_cache_dir, load_prepared, prepare, save_prepared
from neurovox.preprocess.reference import make_reference
from neurovox.preprocess.speech import SpeechFeatures, compute_speech_features, whisper_log_mel
from neurovox.preprocess.splits import Normalizer, Split, make_split

__all__ = [
    "BadChannelReport", "find_bad_channels", "with_bad_channels",
    "HighGammaConfig", "PrepareConfig", "WindowDataset", "make_loader", "stack_windows", "CausalHighGamma",
    "extract_high_gamma", "Prepared", "default_cache_dir", "load_prepared", "prepare", "save_prepared",
    "make_reference", "SpeechFeatures", "compute_speech_features", "whisper_log_mel", "Normalizer", "Split",
    "make_split",
]
