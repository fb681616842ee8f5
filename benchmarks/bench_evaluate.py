"""Evaluation benchmarks: metric cost per trial, the differentiable STOI loss, and its fidelity to pystoi.

- metrics: ms per 1.024 s trial window (128 frames) for pystoi STOI, ESTOI, STOI+ (ours), the word
  recogniser (PocketSphinx, grammar of the corpus's 50 words) and its ratio to STOI, and the whole
  `score_trials` (all metrics) on corpus speech.
- stoi_loss: ms per window of forward + backward at batch 16 (the training setting), and the
  Pearson r / max |difference| between -stoi_loss and pystoi over 14 degraded versions of real
  utterances (white noise at 7 SNRs, 4 low-pass cut-offs, 3 time shifts).

Sizes: "small" (3 repeats, 8 windows) and "full" (7 repeats, 32 windows).
"""

from __future__ import annotations

import time

import numpy as np
import torch
from scipy.signal import butter, sosfiltfilt

from neurovox.evaluate import metrics as M
from neurovox.evaluate.chance import TestSet, audio_to_mel_db, score_trials
from neurovox.decoders.stoi_loss import stoi_loss

N_TARGET = 128


def _row(case: str, metric: str, value: float, unit: str, note: str = "") -> dict:
    return {"benchmark": "evaluate", "case": case, "metric": metric, "value": float(value), "unit": unit, "note": note}


def _windows(n: int) -> np.ndarray:
    """n windows of 1.024 s holding one corpus word each (starting at 0.256 s), float64."""
    from neurovox.simulate.corpus import load_corpus

    corpus = load_corpus()
    out = np.zeros((n, N_TARGET * 128))
    for i, utt in enumerate(corpus.utterances[:n]):
        w = utt.audio[: N_TARGET * 128 - 4096]
        out[i, 4096:4096 + len(w)] = w
    out += 1e-4 * np.random.default_rng(0).standard_normal(out.shape)
    return out


def _median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times))


def run(size: str = "small") -> list[dict]:
    repeats, n = (3, 8) if size == "small" else (7, 32)
    ref = _windows(n)
    rng = np.random.default_rng(1)
    dec = ref + 0.02 * rng.standard_normal(ref.shape)
    rows = []
    for name, fn in (("stoi (pystoi)", M.stoi), ("estoi (pystoi)", M.estoi), ("stoi_plus", M.stoi_plus)):
        rows.append(_row("metrics", name, _median_ms(lambda fn=fn: fn(ref, dec), repeats) / n, "ms/trial",
                         "1.024 s window at 16 kHz"))
    # the word recogniser (issue 17: under 100 ms per trial), beside STOI measured in the same run
    from neurovox.evaluate.asr import recognizer_for
    from neurovox.simulate.corpus import load_corpus

    words = tuple(load_corpus().words)
    recognizer = recognizer_for(words)
    asr_ms = _median_ms(lambda: recognizer.recognize(dec), repeats) / n
    stoi_ms = _median_ms(lambda: M.stoi(ref, dec), repeats) / n
    rows.append(_row("metrics", "asr (PocketSphinx, 50-word grammar)", asr_ms, "ms/trial",
                     "top-3 words per 1.024 s window, one thread"))
    rows.append(_row("metrics", "asr / stoi (same run)", asr_ms / stoi_ms, "ratio", "cost of ASR per trial over STOI's"))
    test = TestSet(neural_windows=np.zeros((n, 144, 1), np.float32), mel_db=audio_to_mel_db(ref), audio=ref,
                   speech_mask=np.ones((n, N_TARGET), bool), n_lead_frames=16,
                   labels=[u.word for u in load_corpus().utterances[:n]], vocabulary=words, asr_note="")
    decoded = {"mel_db": audio_to_mel_db(dec), "audio": dec}
    rows.append(_row("metrics", "score_trials (all metrics)", _median_ms(lambda: score_trials(test, decoded), repeats) / n,
                     "ms/trial", "PCC, STOI, ESTOI, STOI+, MCD, per-bin PCC, ASR"))

    batch = 16
    ref_t = torch.tensor(np.resize(ref, (batch, ref.shape[1])), dtype=torch.float32)
    dec_t = torch.tensor(np.resize(dec, (batch, dec.shape[1])), dtype=torch.float32)

    def step():
        x = dec_t.clone().requires_grad_(True)
        stoi_loss(ref_t, x).backward()

    rows.append(_row("stoi_loss", "forward+backward", _median_ms(step, repeats) / batch, "ms/window",
                     f"batch {batch}, float32, {torch.get_num_threads()} threads"))

    # fidelity to pystoi on longer utterances (3 words joined)
    from neurovox.simulate.corpus import load_corpus

    words = [u.audio.astype(np.float64) for u in load_corpus().utterances[:9]]
    rs, diffs = [], []
    for k in range(3 if size == "full" else 1):
        x = np.concatenate([words[3 * k], np.zeros(1600), words[3 * k + 1], np.zeros(1600), words[3 * k + 2]])
        power = np.mean(x ** 2)
        degraded = [x + rng.standard_normal(len(x)) * np.sqrt(power / 10 ** (snr / 10)) for snr in (20, 10, 5, 0, -5, -10, -15)]
        degraded += [sosfiltfilt(butter(6, fc, fs=16_000, output="sos"), x).copy() for fc in (3000, 1500, 800, 400)]
        degraded += [np.roll(x, s) for s in (160, 800, 3200)]
        ours = np.array([-stoi_loss(torch.tensor(x), torch.tensor(d)).item() for d in degraded])
        ref_scores = np.array([M.stoi(x, d) for d in degraded])
        rs.append(np.corrcoef(ours, ref_scores)[0, 1])
        diffs.append(np.abs(ours - ref_scores).max())
    rows.append(_row("stoi_loss", "pearson r vs pystoi", np.median(rs), "r", "14 degradations per utterance"))
    rows.append(_row("stoi_loss", "max |(-loss) - pystoi|", np.max(diffs), "STOI units"))
    return rows


if __name__ == "__main__":
    for r in run("small"):
        print(r)
