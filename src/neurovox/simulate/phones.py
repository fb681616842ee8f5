"""Phones of the corpus words, their time alignment, and the articulatory and phonetic trajectories
derived from them (inputs of the realistic encoding model, `neurovox.simulate.realistic`).

Pronunciations: `PRONUNCIATIONS` holds the ARPAbet transcription of every corpus word, copied from
the CMU Pronouncing Dictionary (cmudict 0.7b, stress marks removed, first variant), so nothing is
synthesised or looked up at run time. Diphthongs (AY, AW, EY, OW, OY) are split into two half
phones (onset and glide target) because their articulators move within the phone.

Alignment (`align_word`): the phones of a word fill its speech span (the trial's onset to offset,
the same thresholded span the trial table holds) in proportion to intrinsic durations
(`INTRINSIC_DURATION`: vowels longest, stops and glides shortest, Klatt 1976's relative segment
durations, rounded), with the word-final phone lengthened by 30 % (final lengthening). This is a
deterministic approximation of a forced alignment, good to a few tens of ms for words of 2-6
phones; the encoding model's neural smoothing (tens of ms) is coarser.

Articulatory trajectory (`kinematics`): each phone sets targets for 9 articulatory dimensions
(`ARTICULATORS`: lip closure, lip rounding, tongue-tip constriction, tongue-dorsum constriction,
tongue-body height, tongue-body frontness, jaw opening, velum lowering, larynx voicing; 0-1, rest
posture 0). An articulator a phone does not control is left unspecified (NaN) and interpolated
between its neighbours' targets (coarticulation by underspecification, Keating 1988), then every
dimension is smoothed with a Gaussian of articulator-specific SD (`SMOOTHING_SD_S`: tongue tip
fastest, jaw and velum slowest), which blends neighbouring phones both ways (anticipatory and
carry-over coarticulation; articulator movements last 100-300 ms). A 10th dimension is the overall
articulator speed |d(position)/dt| (normalised). These are kinematic trajectories in the sense of
Chartier et al. (Neuron 2018), at the level of detail a phone string allows.

Phonetic features (`phonetic_features`): per frame, the manner and vowel classes that superior
temporal sites are tuned to (Mesgarani et al., Science 2014: plosive, fricative, nasal,
approximant, front, low and back vowels), smoothed with a 15 ms Gaussian.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

# cmudict 0.7b, stress removed
PRONUNCIATIONS: dict[str, tuple[str, ...]] = {
    "apple": ("AE", "P", "AH", "L"), "ball": ("B", "AO", "L"), "bed": ("B", "EH", "D"),
    "bird": ("B", "ER", "D"), "boat": ("B", "OW", "T"), "book": ("B", "UH", "K"),
    "bottle": ("B", "AA", "T", "AH", "L"), "bread": ("B", "R", "EH", "D"), "chair": ("CH", "EH", "R"),
    "cheese": ("CH", "IY", "Z"), "clock": ("K", "L", "AA", "K"), "coat": ("K", "OW", "T"),
    "cup": ("K", "AH", "P"), "dog": ("D", "AO", "G"), "door": ("D", "AO", "R"),
    "drink": ("D", "R", "IH", "NG", "K"), "eat": ("IY", "T"), "egg": ("EH", "G"), "fish": ("F", "IH", "SH"),
    "flower": ("F", "L", "AW", "ER"), "fork": ("F", "AO", "R", "K"), "frog": ("F", "R", "AA", "G"),
    "garden": ("G", "AA", "R", "D", "AH", "N"), "girl": ("G", "ER", "L"), "hammer": ("HH", "AE", "M", "ER"),
    "hand": ("HH", "AE", "N", "D"), "horse": ("HH", "AO", "R", "S"), "house": ("HH", "AW", "S"),
    "jump": ("JH", "AH", "M", "P"), "key": ("K", "IY"), "kitten": ("K", "IH", "T", "AH", "N"),
    "knife": ("N", "AY", "F"), "lamp": ("L", "AE", "M", "P"), "leaf": ("L", "IY", "F"),
    "moon": ("M", "UW", "N"), "mouse": ("M", "AW", "S"), "nose": ("N", "OW", "Z"),
    "orange": ("AO", "R", "AH", "N", "JH"), "pencil": ("P", "EH", "N", "S", "AH", "L"),
    "rain": ("R", "EY", "N"), "ring": ("R", "IH", "NG"), "run": ("R", "AH", "N"), "shoe": ("SH", "UW"),
    "sing": ("S", "IH", "NG"), "sleep": ("S", "L", "IY", "P"), "spoon": ("S", "P", "UW", "N"),
    "table": ("T", "EY", "B", "AH", "L"), "tiger": ("T", "AY", "G", "ER"), "water": ("W", "AO", "T", "ER"),
    "window": ("W", "IH", "N", "D", "OW"),
}

# diphthong -> (onset half, glide half)
DIPHTHONGS = {"AY": ("AA", "IH"), "AW": ("AA", "UH"), "EY": ("EH", "IY"), "OW": ("AO", "UW"), "OY": ("AO", "IY")}

VOWELS = ("AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW")
STOPS = ("P", "B", "T", "D", "K", "G")
FRICATIVES = ("F", "V", "TH", "DH", "S", "Z", "SH", "ZH", "HH", "CH", "JH")  # affricates with fricatives
NASALS = ("M", "N", "NG")
APPROXIMANTS = ("L", "R", "W", "Y")
VOICELESS = ("P", "T", "K", "F", "TH", "S", "SH", "HH", "CH")

# relative intrinsic durations (Klatt 1976, rounded); diphthongs 1.3, split in two halves
INTRINSIC_DURATION = {**{v: 1.0 for v in VOWELS}, **{v: 1.3 for v in DIPHTHONGS}, "ER": 1.0,
                      **{c: 0.55 for c in STOPS}, **{c: 0.8 for c in FRICATIVES}, "S": 0.9, "SH": 0.9, "HH": 0.5,
                      **{c: 0.65 for c in NASALS}, **{c: 0.55 for c in APPROXIMANTS}}
FINAL_LENGTHENING = 1.3

ARTICULATORS = ("lip_closure", "lip_rounding", "tongue_tip", "tongue_dorsum", "tongue_height",
                "tongue_front", "jaw_open", "velum", "larynx")
KINEMATIC_FEATURES = ARTICULATORS + ("speed",)
N_KINEMATIC = len(KINEMATIC_FEATURES)
# Gaussian SD of each articulator's movement (s): tongue tip fastest, jaw / velum slowest
SMOOTHING_SD_S = np.array([0.025, 0.035, 0.018, 0.025, 0.03, 0.03, 0.035, 0.035, 0.015])

_ = np.nan
# targets per phone: lip_closure, lip_rounding, tongue_tip, tongue_dorsum, tongue_height, tongue_front,
# jaw_open, velum, larynx (0-1; NaN = not controlled by this phone, interpolated from the neighbours)
_TARGETS = {
    # vowels: lips open, tongue tip and dorsum down, velum unspecified (nasal coarticulation), voiced
    "IY": (0, 0.0, 0, 0, 1.00, 1.00, 0.20, _, 1), "IH": (0, 0.0, 0, 0, 0.80, 0.85, 0.30, _, 1),
    "EH": (0, 0.0, 0, 0, 0.45, 0.75, 0.60, _, 1), "AE": (0, 0.0, 0, 0, 0.15, 0.70, 0.90, _, 1),
    "AA": (0, 0.1, 0, 0, 0.00, 0.20, 1.00, _, 1), "AH": (0, 0.1, 0, 0, 0.35, 0.45, 0.60, _, 1),
    "AO": (0, 0.6, 0, 0, 0.30, 0.10, 0.80, _, 1), "UH": (0, 0.7, 0, 0, 0.75, 0.25, 0.35, _, 1),
    "UW": (0, 1.0, 0, 0, 0.95, 0.15, 0.25, _, 1), "ER": (0, 0.4, 0.5, 0, 0.55, 0.50, 0.40, _, 1),
    # stops
    "P": (1, _, _, _, _, _, 0.10, 0, 0), "B": (1, _, _, _, _, _, 0.10, 0, 1),
    "T": (_, _, 1, _, _, _, 0.15, 0, 0), "D": (_, _, 1, _, _, _, 0.15, 0, 1),
    "K": (_, _, _, 1, 1.0, 0.2, 0.30, 0, 0), "G": (_, _, _, 1, 1.0, 0.2, 0.30, 0, 1),
    # fricatives and affricates
    "F": (0.7, _, _, _, _, _, 0.15, 0, 0), "V": (0.7, _, _, _, _, _, 0.15, 0, 1),
    "TH": (_, _, 0.8, _, _, _, 0.15, 0, 0), "DH": (_, _, 0.8, _, _, _, 0.15, 0, 1),
    "S": (_, _, 0.9, _, _, _, 0.15, 0, 0), "Z": (_, _, 0.9, _, _, _, 0.15, 0, 1),
    "SH": (_, 0.5, 0.8, _, 0.8, _, 0.20, 0, 0), "ZH": (_, 0.5, 0.8, _, 0.8, _, 0.20, 0, 1),
    "CH": (_, 0.5, 0.9, _, 0.8, _, 0.20, 0, 0), "JH": (_, 0.5, 0.9, _, 0.8, _, 0.20, 0, 1),
    "HH": (_, _, _, _, _, _, _, 0, 0),
    # nasals
    "M": (1, _, _, _, _, _, 0.10, 1, 1), "N": (_, _, 1, _, _, _, 0.15, 1, 1), "NG": (_, _, _, 1, 1.0, 0.2, 0.30, 1, 1),
    # approximants
    "L": (_, _, 1, _, _, _, 0.25, 0, 1), "R": (_, 0.4, 0.6, _, 0.6, _, 0.30, 0, 1),
    "W": (0.5, 1.0, _, 0.4, 0.9, 0.15, 0.25, 0, 1), "Y": (_, 0.0, _, _, 1.0, 1.0, 0.20, 0, 1),
}
TARGETS = {k: np.asarray(v, float) for k, v in _TARGETS.items()}
REST = np.zeros(len(ARTICULATORS))     # posture between words

PHONETIC_FEATURES = ("plosive", "fricative", "nasal", "approximant", "front_vowel", "low_vowel", "back_vowel")
N_PHONETIC = len(PHONETIC_FEATURES)
_VOWEL_CLASS = {"IY": (1, 0, 0), "IH": (1, 0, 0), "EH": (1, 0.5, 0), "AE": (0.5, 1, 0), "AA": (0, 1, 0.5),
                "AH": (0, 0.5, 0.5), "AO": (0, 0.5, 1), "UH": (0, 0, 1), "UW": (0, 0, 1), "ER": (0.5, 0, 0.5)}
PHONETIC_SD_S = 0.015


def phonetic_vector(phone: str) -> np.ndarray:
    """The 7 phonetic features of one (half) phone, 0-1."""
    v = np.zeros(N_PHONETIC)
    v[0], v[1], v[2], v[3] = phone in STOPS, phone in FRICATIVES, phone in NASALS, phone in APPROXIMANTS
    if phone in _VOWEL_CLASS:
        v[4:] = _VOWEL_CLASS[phone]
    return v


def word_phones(word: str) -> list[tuple[str, float]]:
    """(phone, relative duration) of a corpus word, diphthongs split into halves, final phone lengthened."""
    if word not in PRONUNCIATIONS:
        raise KeyError(f"no pronunciation for word {word!r}; add it to neurovox.simulate.phones.PRONUNCIATIONS.")
    out = []
    phones = PRONUNCIATIONS[word]
    for i, ph in enumerate(phones):
        dur = INTRINSIC_DURATION[ph] * (FINAL_LENGTHENING if i == len(phones) - 1 else 1.0)
        if ph in DIPHTHONGS:
            out += [(half, dur / 2) for half in DIPHTHONGS[ph]]
        else:
            out.append((ph, dur))
    return out


def align_word(word: str, onset_s: float, offset_s: float) -> list[tuple[str, float, float]]:
    """(phone, start_s, stop_s) filling [onset_s, offset_s] in proportion to intrinsic durations."""
    phones = word_phones(word)
    w = np.array([d for _, d in phones])
    edges = onset_s + (offset_s - onset_s) * np.r_[0.0, np.cumsum(w) / w.sum()]
    return [(ph, float(edges[i]), float(edges[i + 1])) for i, (ph, _) in enumerate(phones)]


def _targets_at_frames(events: list[tuple[str, float, float]], n_frames: int, frame_rate_hz: float,
                       words: list[tuple[float, float]]) -> np.ndarray:
    """Piecewise-constant targets (n_frames, 9), unspecified dimensions interpolated between the
    specified phones of the same word (and the rest posture outside words)."""
    t = (np.arange(n_frames) + 0.5) / frame_rate_hz
    out = np.zeros((n_frames, len(ARTICULATORS)))
    # anchor points: phone centres (with targets) and rest anchors just outside each word
    centres, values = [], []
    for w0, w1 in words:
        centres += [w0 - 1e-3]
        values.append(REST)
        for ph, s0, s1 in (e for e in events if w0 - 1e-9 <= e[1] < w1):
            centres.append((s0 + s1) / 2)
            values.append(TARGETS[ph])
        centres.append(w1 + 1e-3)
        values.append(REST)
    centres, values = np.asarray(centres), np.asarray(values)
    for j in range(len(ARTICULATORS)):
        ok = np.isfinite(values[:, j])
        out[:, j] = np.interp(t, centres[ok], values[ok, j], left=0.0, right=0.0)
    # inside a phone, its specified targets hold over the whole phone (plateau), the rest stays interpolated
    idx = np.searchsorted(t, [e[1] for e in events]), np.searchsorted(t, [e[2] for e in events])
    for (ph, _, _), i0, i1 in zip(events, *idx):
        tgt = TARGETS[ph]
        ok = np.isfinite(tgt)
        out[i0:i1, ok] = tgt[ok]
    # outside words: rest
    inside = np.zeros(n_frames, bool)
    for w0, w1 in words:
        inside[np.searchsorted(t, w0):np.searchsorted(t, w1)] = True
    out[~inside] = REST
    return out


def kinematics(events: list[tuple[str, float, float]], words: list[tuple[float, float]], n_frames: int,
               frame_rate_hz: float) -> np.ndarray:
    """Articulatory kinematic trajectory, shape (n_frames, 10), float32: the 9 `ARTICULATORS`
    (0-1) and their overall speed (`speed`, scaled so a fast movement reaches ~1).

    events : (phone, start_s, stop_s) of every phone spoken; words : (onset_s, offset_s) of every word.
    """
    pos = _targets_at_frames(events, n_frames, frame_rate_hz, words)
    for j, sd_s in enumerate(SMOOTHING_SD_S):
        pos[:, j] = gaussian_filter1d(pos[:, j], sd_s * frame_rate_hz, mode="nearest")
    vel = np.gradient(pos, axis=0) * frame_rate_hz                    # 1 / s
    speed = np.sqrt((vel ** 2).sum(axis=1)) / 25.0                    # ~1 at a fast (25 / s) combined movement
    return np.concatenate([pos, np.clip(speed, 0, 1.5)[:, None]], axis=1).astype(np.float32)


def phonetic_features(events: list[tuple[str, float, float]], n_frames: int, frame_rate_hz: float) -> np.ndarray:
    """Phonetic feature time courses, shape (n_frames, 7), float32 (`PHONETIC_FEATURES`, 0-1)."""
    t = (np.arange(n_frames) + 0.5) / frame_rate_hz
    out = np.zeros((n_frames, N_PHONETIC))
    for ph, s0, s1 in events:
        out[np.searchsorted(t, s0):np.searchsorted(t, s1)] = phonetic_vector(ph)
    return gaussian_filter1d(out, PHONETIC_SD_S * frame_rate_hz, axis=0, mode="constant").astype(np.float32)
