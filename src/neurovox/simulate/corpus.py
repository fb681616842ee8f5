"""The shipped speech corpus: ~50 English words spoken by several synthetic voices.

Rendered once by `scripts/render_corpus.py` (flite voices kal16, awb, rms, slt and espeak-ng
voices) at 16 kHz, trimmed and peak-normalised; stored as one 16-bit FLAC per voice plus
`index.json` in `neurovox/data/corpus/`. No speech synthesizer is needed at run time.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import soundfile as sf

from neurovox.errors import DataError
from neurovox.utils.check import check_option


@dataclass(frozen=True)
class Utterance:
    """One word spoken by one voice: `audio` float32 (n_samples,) at 16 kHz, peak 0.9."""

    word: str
    voice: str
    sex: str
    audio: np.ndarray


@dataclass(frozen=True)
class Corpus:
    """All utterances of the shipped corpus."""

    utterances: tuple[Utterance, ...]
    sample_rate_hz: int
    words: tuple[str, ...]
    voices: tuple[str, ...]
    voice_sex: dict

    def __len__(self) -> int:
        return len(self.utterances)

    def for_voice(self, voice: str) -> dict[str, Utterance]:
        """word -> Utterance for one voice."""
        check_option("voice", voice, self.voices, error=DataError)
        return {u.word: u for u in self.utterances if u.voice == voice}

    @property
    def duration_s(self) -> float:
        return sum(len(u.audio) for u in self.utterances) / self.sample_rate_hz


def corpus_dir() -> Path:
    return Path(str(resources.files("neurovox") / "data" / "corpus"))


@functools.lru_cache(maxsize=2)
def load_corpus(path: str | None = None) -> Corpus:
    """Load the shipped corpus (or one rendered elsewhere by scripts/render_corpus.py).

    Cached: every call returns the same object, and its audio arrays are read-only (copy to modify).
    """
    root = Path(path) if path else corpus_dir()
    index_path = root / "index.json"
    if not index_path.is_file():
        raise DataError(f"speech corpus index {index_path} is missing; the package was installed without its data. "
                        "Reinstall neurovox, or render it with `python scripts/render_corpus.py`.")
    index = json.loads(index_path.read_text())
    voices = {}
    for name, info in index["voices"].items():
        audio, sfreq_hz = sf.read(root / info["file"], dtype="float32")
        if sfreq_hz != index["sample_rate_hz"]:
            raise DataError(f"corpus file {info['file']} is at {sfreq_hz} Hz, expected {index['sample_rate_hz']} Hz.")
        voices[name] = audio
    utts = []
    for u in index["utterances"]:
        audio = voices[u["voice"]][u["start_sample"]:u["stop_sample"]].copy()
        audio.flags.writeable = False     # shared by every caller of the cached corpus
        utts.append(Utterance(word=u["word"], voice=u["voice"], sex=u["sex"], audio=audio))
    utts = tuple(utts)
    return Corpus(utterances=utts, sample_rate_hz=int(index["sample_rate_hz"]), words=tuple(index["words"]),
                  voices=tuple(index["voices"]), voice_sex={k: v["sex"] for k, v in index["voices"].items()})
