"""Closed-vocabulary word recognition of decoded audio: is the decoded word understood?

The field judges decoded speech by whether it can be understood; a speech recogniser is the listener that
never tires. `WordRecognizer` runs PocketSphinx (the `pocketsphinx` wheel: its shipped US-English acoustic
model and CMU dictionary, nothing downloaded) with a JSGF grammar that allows exactly one word of the
recording's word list, so the task is a forced choice among the V words and chance is 1 / V.

    rec = WordRecognizer(["apple", "ball", ...])
    rec.recognize(audio)            # audio (n_trials, n_samples) at 16 kHz -> [["ball", "bed", "apple"], ...]

Each trial gets the grammar's best distinct words in order (PocketSphinx's n-best list): the first is the
recognised word (top-1), the first `TOP_K` give the top-k accuracy. ~10 ms per 1-s trial on one core.

`asr_applicability(language, vocabulary)` says whether the metric applies: the shipped model is US
English, so a recording in another language (SWPD is Dutch), without word labels, or with a word the
CMU dictionary does not hold gets a reason instead of a score (never a silent zero).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from neurovox.errors import DataError

SAMPLE_RATE_HZ = 16_000   # the shipped acoustic model's rate
TOP_K = 3                 # distinct words kept per trial (top-3 accuracy)
_NBEST_MAX = 60           # n-best entries read to find TOP_K distinct words (entries repeat words)
_PAD_S = 0.3              # silence around each trial: the recogniser's cepstral mean needs some non-speech
ENGLISH = ("en", "en-us", "en_us", "en-gb", "en_gb", "eng", "english")
_WORD = re.compile(r"^[a-z][a-z'\-.]*$")


def normalize_word(label: str) -> str:
    """Lower case, inner whitespace collapsed: the form compared with the recogniser's output."""
    return " ".join(str(label).lower().split())


@functools.lru_cache(maxsize=1)
def _cmu_words() -> frozenset[str]:
    """Headwords of the CMU dictionary shipped with pocketsphinx (variants such as "read(2)" folded)."""
    import pocketsphinx

    path = Path(pocketsphinx.get_model_path()) / "en-us" / "cmudict-en-us.dict"
    with open(path, encoding="utf-8", errors="replace") as fh:
        return frozenset(line.split(" ", 1)[0].split("(", 1)[0] for line in fh if line.strip())


def asr_applicability(language: str, vocabulary: Sequence[str]) -> str | None:
    """None when the shipped recogniser can score these words, else the reason it cannot (for the report)."""
    lang = str(language or "unknown").lower()
    if lang not in ENGLISH and lang != "unknown":
        return (f"not applicable: the shipped recogniser (PocketSphinx en-US) has no model for this recording's "
                f"language ({language!r})")
    words = [normalize_word(w) for w in vocabulary if normalize_word(w)]
    if len(words) < 2:
        return "not applicable: the test windows carry no word labels (or a single word), so there is no word to recognise"
    try:
        known = _cmu_words()
    except ImportError:
        return "not applicable: the pocketsphinx package is not installed (pip install pocketsphinx)"
    missing = sorted({t for w in words for t in w.split() if not _WORD.match(t) or t not in known})
    if missing:
        shown = ", ".join(repr(m) for m in missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
        note = "" if lang in ENGLISH else " (the recording's language is not recorded; if it is not English, that is why)"
        return f"not applicable: {len(missing)} word(s) of the vocabulary are not in the recogniser's US-English dictionary: {shown}{note}"
    return None


class WordRecognizer:
    """PocketSphinx with a one-word JSGF grammar over `vocabulary` (a forced choice among its words)."""

    def __init__(self, vocabulary: Sequence[str]):
        import pocketsphinx

        self.vocabulary = tuple(sorted({normalize_word(w) for w in vocabulary if normalize_word(w)}))
        reason = asr_applicability("en", self.vocabulary)
        if reason is not None:
            raise DataError(f"Cannot build a word recogniser: {reason}.")
        grammar = ("#JSGF V1.0;\ngrammar neurovox_words;\npublic <word> = "
                   + " | ".join(self.vocabulary) + ";\n")
        self._decoder = pocketsphinx.Decoder(lm=None, loglevel="FATAL", samprate=SAMPLE_RATE_HZ)
        self._decoder.add_jsgf_string("words", grammar)
        self._decoder.activate_search("words")

    @property
    def chance(self) -> float:
        """Accuracy of a uniform guess among the vocabulary's words."""
        return 1.0 / len(self.vocabulary)

    def recognize_one(self, audio: np.ndarray) -> list[str]:
        """Up to TOP_K distinct words, best first, for one mono waveform (n_samples,) at 16 kHz; [] when
        nothing was recognised (silence)."""
        wave = np.asarray(audio, dtype=np.float64).reshape(-1)
        if not np.all(np.isfinite(wave)):
            raise DataError("Audio given to the word recogniser contains NaN/Inf.")
        peak = float(np.abs(wave).max()) if wave.size else 0.0
        if peak < 1e-6:  # silence: nothing to recognise (PocketSphinx would still force a word)
            return []
        pad = np.zeros(int(_PAD_S * SAMPLE_RATE_HZ))
        pcm = (np.concatenate([pad, wave / peak * 0.9, pad]) * 32767).astype(np.int16)
        dec = self._decoder
        dec.start_utt()
        dec.process_raw(pcm.tobytes(), False, True)
        dec.end_utt()
        hyp = dec.hyp()
        if hyp is None or not hyp.hypstr:
            return []
        words = [normalize_word(hyp.hypstr)]
        for i, h in enumerate(dec.nbest()):
            if i >= _NBEST_MAX or len(words) >= TOP_K:
                break
            w = normalize_word(h.hypstr) if h is not None and h.hypstr else ""
            if w and w not in words:
                words.append(w)
        return words

    def recognize(self, audio: np.ndarray, sfreq_hz: int = SAMPLE_RATE_HZ) -> list[list[str]]:
        """`recognize_one` of every row of audio (n_trials, n_samples)."""
        if int(sfreq_hz) != SAMPLE_RATE_HZ:
            raise DataError(f"The word recogniser takes {SAMPLE_RATE_HZ} Hz audio; got {sfreq_hz} Hz. Resample first "
                            "(e.g. scipy.signal.resample_poly).")
        audio = np.asarray(audio)
        if audio.ndim != 2:
            raise DataError(f"Audio for the word recogniser must be (n_trials, n_samples); got shape {audio.shape}.")
        return [self.recognize_one(a) for a in audio]


@functools.lru_cache(maxsize=4)
def recognizer_for(vocabulary: tuple[str, ...]) -> WordRecognizer:
    """One recogniser per vocabulary per process (building the grammar search takes ~0.1 s)."""
    return WordRecognizer(vocabulary)


def word_accuracy(recognized: list[list[str]], labels: Sequence[str], k: int = 1) -> np.ndarray:
    """Per trial 1.0 when the label is among the first k recognised words, else 0.0; shape (n_trials,)."""
    return np.array([float(normalize_word(lab) in r[:k]) for r, lab in zip(recognized, labels)])


def confusion_counts(recognized: list[list[str]], labels: Sequence[str],
                     vocabulary: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Counts (n_words, n_words + 1): row = spoken word, column = recognised word, last column = nothing
    recognised; returns (counts, the words in row/column order)."""
    words = [normalize_word(w) for w in vocabulary]
    index = {w: i for i, w in enumerate(words)}
    counts = np.zeros((len(words), len(words) + 1), dtype=int)
    for r, lab in zip(recognized, labels):
        row = index.get(normalize_word(lab))
        if row is None:
            continue
        counts[row, index.get(r[0], len(words)) if r else len(words)] += 1
    return counts, words
