"""The word recogniser (neurovox.evaluate.asr) and the ASR accuracy in every evaluation.

Bars measured 2026-12-02 with pocketsphinx 5.1.1 on the shipped corpus (50 words, grammar of all 50):
flite voices kal16 44, awb 48, rms 50, slt 41 of 50 words (0.915 over the four); 50 white-noise inputs
recognised as their label 0 times (chance 1/50).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from neurovox.errors import DataError
from neurovox.evaluate import asr
from neurovox.evaluate import chance as C
from neurovox.evaluate.evaluate import asr_vocabulary, evaluate_test_set
from neurovox.simulate.corpus import load_corpus
from tests.conftest import PerfectDecoder, make_word_test_set


@pytest.fixture(scope="module")
def corpus():
    return load_corpus()


@pytest.fixture(scope="module")
def recognizer(corpus):
    return asr.WordRecognizer(corpus.words)


def test_clean_shipped_words_are_recognised(corpus, recognizer):
    flite = [v for v in corpus.voices if v.startswith("flite")]
    hits, n = 0, 0
    for voice in flite:
        utt = corpus.for_voice(voice)
        words = sorted(utt)
        longest = max(len(utt[w].audio) for w in words)
        audio = np.zeros((len(words), longest), np.float32)
        for i, w in enumerate(words):
            audio[i, :len(utt[w].audio)] = utt[w].audio
        recognized = recognizer.recognize(audio)
        hits += int(asr.word_accuracy(recognized, words).sum())
        n += len(words)
        top3 = asr.word_accuracy(recognized, words, asr.TOP_K)
        assert np.all(top3 >= asr.word_accuracy(recognized, words))  # top-3 contains top-1
    assert n == 200 and hits / n >= 0.85, hits / n  # measured 0.915


def test_noise_is_recognised_at_most_at_chance(corpus, recognizer):
    rng = np.random.default_rng(0)
    words = list(corpus.words)
    noise = (0.1 * rng.standard_normal((len(words), 16_000))).astype(np.float32)
    acc = asr.word_accuracy(recognizer.recognize(noise), words)
    assert acc.mean() <= 3 / len(words), acc.mean()  # chance 1/50; measured 0


def test_silence_bad_rate_and_bad_values(recognizer):
    assert recognizer.recognize(np.zeros((2, 16_000), np.float32)) == [[], []]
    assert asr.word_accuracy([[]], ["apple"]).tolist() == [0.0]
    with pytest.raises(DataError, match="16000 Hz audio; got 8000 Hz"):
        recognizer.recognize(np.zeros((1, 8000)), sfreq_hz=8000)
    with pytest.raises(DataError, match=r"\(n_trials, n_samples\)"):
        recognizer.recognize(np.zeros(16_000))
    bad = np.zeros((1, 16_000))
    bad[0, 5] = np.nan
    with pytest.raises(DataError, match="NaN"):
        recognizer.recognize(bad)


def test_applicability_says_why_not():
    assert asr.asr_applicability("en", ["apple", "ball"]) is None
    assert asr.asr_applicability("unknown", ["Apple", "ball"]) is None
    assert "language ('nl')" in asr.asr_applicability("nl", ["appel", "bal"])
    why = asr.asr_applicability("unknown", ["apple", "zwqxy"])
    assert "'zwqxy'" in why and "not in the recogniser's US-English dictionary" in why
    assert "no word labels" in asr.asr_applicability("en", ["apple"])
    with pytest.raises(DataError, match="zwqxy"):
        asr.WordRecognizer(["apple", "zwqxy"])
    # continuous SWPD tiles (no word per window) and a Dutch word list: no vocabulary, a reason
    assert asr_vocabulary("nl", ["", ""], ["", ""]) == ((), "not applicable: these test windows belong to no word "
                                                            "(continuous SWPD tiles)")
    vocab, note = asr_vocabulary("nl", ["appel", "bal", "appel"], ["appel", "bal"])
    assert vocab == () and "language" in note
    assert asr_vocabulary("en", ["Ball", "apple", "ball"], ["ball"]) == (("apple", "ball"), "")


def test_confusion_counts():
    counts, words = asr.confusion_counts([["b"], ["a", "b"], []], ["a", "a", "b"], ["a", "b"])
    assert words == ["a", "b"]
    assert counts.tolist() == [[1, 1, 0], [0, 0, 1]]


@pytest.fixture(scope="module")
def word_test_set():
    """8 test windows of real words (flite rms, recognised 50/50 alone), the corpus's 50 words as vocabulary."""
    return make_word_test_set(8)


def test_evaluation_reports_asr_with_chance_and_ceiling(word_test_set, tmp_path):
    out = tmp_path / "eval"
    res = evaluate_test_set(PerfectDecoder(word_test_set), word_test_set, out, seed=0, n_boot=200,
                            max_trial_figures=1)
    a = res["asr"]
    assert a["applies"] and a["vocabulary_size"] == 50 and a["chance_uniform"] == pytest.approx(0.02)
    # the perfect decoder returns the reference audio: its accuracy is the reference's, and these clean
    # words are all recognised
    assert res["metrics"]["asr_word"]["mean"] == pytest.approx(a["reference"]["asr_word"]["mean"]) == 1.0
    # trial-shuffled input makes the perfect decoder say another trial's word: accuracy 0
    assert res["chance"]["shuffled"]["asr_word"]["mean"] == 0.0
    assert "asr_word" in res["gain"]["chance_shuffled"]
    saved = json.loads((out / "metrics.json").read_text())
    assert [t["asr_decoded"][0] for t in saved["trials"]] == list(word_test_set.labels)
    assert all(t["asr_reference"][0] == t["label"] for t in saved["trials"])
    page = (out / "report.html").read_text()
    assert "Intelligibility: word recognition" in page and "ceiling: reference audio" in page
    assert (out / "figures" / "confusion_decoded.png").stat().st_size > 1000


def test_evaluation_without_a_vocabulary_says_why(word_test_set, tmp_path):
    from dataclasses import replace

    dutch = replace(word_test_set, vocabulary=(), asr_note="not applicable: the shipped recogniser (PocketSphinx "
                                                          "en-US) has no model for this recording's language ('nl')")
    res = evaluate_test_set(PerfectDecoder(dutch), dutch, tmp_path / "eval", seed=0, n_boot=100, max_trial_figures=0)
    assert res["asr"] == {"applies": False, "note": dutch.asr_note}
    assert "asr_word" not in res["metrics"]
    assert "no model for this recording" in (tmp_path / "eval" / "report.html").read_text()
