"""Render the simulator's word corpus with real speech synthesizers (run once; the result ships).

    python scripts/render_corpus.py [--out src/neurovox/data/corpus]

Needs the Debian packages `flite` and `espeak-ng` (only here: the demo and tests load the shipped
result). Each word of `WORDS` is spoken by every voice of `VOICES`, resampled to 16 kHz mono,
silence-trimmed (frames more than 40 dB below the utterance peak at either end are cut, 20 ms of
margin kept) and peak-normalised to 0.9. Per voice, the utterances are concatenated with 50 ms of
digital silence between them into one 16-bit FLAC file (`<voice>.flac`), and `index.json` lists
every utterance: word, voice, sex, synthesizer, start/stop sample in that file.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

SAMPLE_RATE_HZ = 16_000
GAP_SAMPLES = 800          # 50 ms of silence between utterances in a voice file
TRIM_DB = 40.0             # trim frames this far below the utterance peak at the ends
MARGIN_S = 0.02            # margin kept around the trimmed utterance
PEAK = 0.9                 # peak amplitude after normalisation

# ~50 concrete nouns and verbs, 1-2 syllables, varied onsets (stops, fricatives, nasals, liquids,
# glides, vowels) and vowels, the kind of items picture-naming and repetition tasks use.
WORDS = (
    "apple", "ball", "bed", "bird", "boat", "book", "bottle", "bread", "chair", "cheese",
    "clock", "coat", "cup", "dog", "door", "drink", "eat", "egg", "fish", "flower",
    "fork", "frog", "garden", "girl", "hammer", "hand", "horse", "house", "jump", "key",
    "kitten", "knife", "lamp", "leaf", "moon", "mouse", "nose", "orange", "pencil", "rain",
    "ring", "run", "shoe", "sing", "sleep", "spoon", "table", "tiger", "water", "window",
)

# name -> (synthesizer, voice argument, sex)
VOICES = {
    "flite_kal16": ("flite", "kal16", "M"),
    "flite_awb": ("flite", "awb", "M"),
    "flite_rms": ("flite", "rms", "M"),
    "flite_slt": ("flite", "slt", "F"),
    "espeak_en_us": ("espeak-ng", "en-us", "M"),
    "espeak_en_us_f3": ("espeak-ng", "en-us+f3", "F"),
    "espeak_en_gb_f4": ("espeak-ng", "en-gb+f4", "F"),
}


def synthesize(engine: str, voice: str, word: str, wav_path: Path) -> None:
    if engine == "flite":
        cmd = ["flite", "-voice", voice, "-t", word, "-o", str(wav_path)]
    else:
        cmd = ["espeak-ng", "-v", voice, "-s", "150", "-w", str(wav_path), word]
    subprocess.run(cmd, check=True, capture_output=True)


def to_16k_mono(wave: np.ndarray, sfreq_hz: int) -> np.ndarray:
    if wave.ndim == 2:
        wave = wave.mean(axis=1)
    if sfreq_hz != SAMPLE_RATE_HZ:
        g = gcd(int(sfreq_hz), SAMPLE_RATE_HZ)
        wave = resample_poly(wave, SAMPLE_RATE_HZ // g, int(sfreq_hz) // g)
    return wave.astype(np.float64)


def trim_and_normalise(wave: np.ndarray) -> np.ndarray:
    """Cut leading/trailing frames > TRIM_DB below the peak frame energy, keep a margin, peak-normalise."""
    frame = 160  # 10 ms
    n_frames = len(wave) // frame
    energy_db = 10 * np.log10(np.mean(wave[: n_frames * frame].reshape(n_frames, frame) ** 2, axis=1) + 1e-12)
    loud = np.flatnonzero(energy_db > energy_db.max() - TRIM_DB)
    margin = int(MARGIN_S * SAMPLE_RATE_HZ)
    start = max(0, loud[0] * frame - margin)
    stop = min(len(wave), (loud[-1] + 1) * frame + margin)
    wave = wave[start:stop]
    wave = wave - wave.mean()
    return PEAK * wave / np.abs(wave).max()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "src/neurovox/data/corpus"))
    args = parser.parse_args(argv)
    for tool in ("flite", "espeak-ng"):
        if shutil.which(tool) is None:
            print(f"render_corpus: {tool} is not installed (apt-get install {tool}).", file=sys.stderr)
            return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    index = {"sample_rate_hz": SAMPLE_RATE_HZ, "words": list(WORDS), "voices": {}, "utterances": []}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (engine, voice, sex) in VOICES.items():
            pieces, pos = [], 0
            for word in WORDS:
                wav_path = Path(tmp) / f"{name}_{word}.wav"
                synthesize(engine, voice, word, wav_path)
                wave, sfreq_hz = sf.read(wav_path, dtype="float64")
                wave = trim_and_normalise(to_16k_mono(wave, sfreq_hz))
                index["utterances"].append({"word": word, "voice": name, "sex": sex,
                                            "start_sample": pos, "stop_sample": pos + len(wave)})
                pieces += [wave, np.zeros(GAP_SAMPLES)]
                pos += len(wave) + GAP_SAMPLES
            sf.write(out / f"{name}.flac", np.concatenate(pieces), SAMPLE_RATE_HZ, subtype="PCM_16")
            index["voices"][name] = {"engine": engine, "voice": voice, "sex": sex, "file": f"{name}.flac"}
            print(f"{name}: {len(WORDS)} words, {pos / SAMPLE_RATE_HZ:.1f} s")
    (out / "index.json").write_text(json.dumps(index, indent=1) + "\n")
    total = sum(p.stat().st_size for p in out.iterdir())
    print(f"wrote {out} ({total / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
