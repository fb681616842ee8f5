"""`simulate_participant`: a speaking participant with a known ground truth.

One voice from the shipped corpus speaks ~50 words over 5 tasks with natural pauses; the electrodes
of the layout respond through the encoding model `cfg.encoding` selects: "realistic" (default;
articulatory, auditory and planning components with nonlinearities, variability and drift,
`realistic.py`) or "linear" (a Gaussian-tuned linear filter of the log-mel spectrogram, `neural.py`,
kept bit for bit for comparison); the
result is a `Recording` of high-gamma envelopes at 125 Hz (Flinker convention) or raw voltage at
1024 Hz (SWPD convention), plus a `GroundTruth` holding what generated it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from neurovox import dsp
from neurovox.config import to_dict
from neurovox.errors import ConfigError, DataError
from neurovox.io.recording import Recording, RecordingMeta
from neurovox.utils.check import check_option, check_range
from neurovox.utils.files import atomic_path, write_json_atomic

from neurovox.simulate import neural, realistic
from neurovox.simulate.config import ENCODINGS, SimulateConfig
from neurovox.simulate.corpus import load_corpus
from neurovox.simulate.layouts import make_layout
from neurovox.simulate.speech import build_timeline, speech_feature

GROUND_TRUTH_NPZ = "ground_truth.npz"
GROUND_TRUTH_JSON = "ground_truth.json"


@dataclass
class GroundTruth:
    """What generated a simulated recording (everything per channel is in channel-table order).

    envelope : ndarray, shape (n_frames, n_channels), float32
        Noiseless high-gamma envelope at 125 Hz: baseline + signal (the observed high gamma of a
        good channel is `envelope + noise`).
    baseline : (n_channels,) envelope level in silence (1.0).
    lag_s : (n_channels,) response delay relative to the audio feature in s (negative = leads);
        realistic: the delay of the response peak (`realistic.Sites.lag_s`), NaN for "none".
    tuning_centre_mel, tuning_width_mel : (n_channels,) Gaussian spectral tuning over the 80 mel bins
        (linear encoding; NaN for realistic, which has no spectral tuning).
    amplitude : (n_channels,) response amplitude at full feature level (multiples of the baseline, 1-3).
    site_kind : (n_channels,) the channel's role: linear "sensorimotor" or "auditory"; realistic one of
        `realistic.ROLES` (sensorimotor, auditory_onset, auditory_sustained, planning, none).
    snr_db_per_channel : (n_channels,) var(envelope) / var(noise) in dB as generated.
    bad_channels : (n_bad,) int indices; bad_kind : "flat" or "noisy" each.
    trial_gain : (n_trials,) multiplicative gain of each trial's neural response.
    raw_hg_envelope : ndarray, shape (n_frames, n_channels), float32, or None
        Raw simulations only (None otherwise): the high-gamma amplitude actually present in the raw
        voltage, in volts, at the same 125 Hz frames as `envelope` (frame i averages over
        [i / 125, (i + 1) / 125) s, the framing of `neurovox.preprocess`): the Hilbert amplitude of the
        noiseless high-gamma component `raw_hg_uv * carrier * max(envelope + noise, 0.05)` before the
        1/f background, common mode, white and line noise are added. It includes the envelope-level
        noise and the band-limited carrier's own random amplitude fluctuation, which no extractor
        can remove from the voltage, so it (not `envelope`) is the target for scoring PREPROCESSING
        (`extract_high_gamma`); `envelope` stays what DECODERS should recover. Flat bad channels: 0.
    encoding : "realistic" or "linear" (the model that generated the file).
    model_arrays : dict of ndarray
        Realistic encoding only (empty for linear): the truth of every component, saved in
        ground_truth.npz under these names (channel indices refer to the channel table):
        `site_*` the per-contact model parameters (`realistic.Sites`: site_role, site_lag_s,
        site_tau_s, site_kin_weights, site_aud_weights, site_threshold, site_c50, site_scale,
        site_amplitude, site_own_gain, site_word_gain, site_snr_db); `drive_<component>` (n_frames,
        n_component_channels) each component's contribution to `envelope` on the contacts
        `drive_<component>_channels` (components: articulatory, auditory_heard, auditory_own,
        planning; `envelope = baseline + sum of drives`, see `drive`); `articulatory` (n_frames, 10)
        the kinematic trajectory in the audio's time (`articulatory_names`); `phonetic` (n_frames, 7)
        phonetic features of the own speech (`phonetic_names`); `phone`, `phone_trial`,
        `phone_onset_s`, `phone_offset_s` the phone alignment; `stimulus_word`, `stimulus_onset_s`,
        `stimulus_offset_s` (n_trials,) the heard stimulus ("" / NaN when none) and
        `stimulus_voice`; `plan_start_s` (n_trials,) planning-ramp starts; `trial_latency_s`,
        `stimulus_latency_s` (n_trials,) latency jitter of the response to the own speech and to the
        stimulus; `site_trial_gain` (n_trials, n_channels); `drift_time_s` (n_s,) with `gain_drift`,
        `noise_drift` (n_s, n_channels) the slow log drifts at 1 Hz; `noise_sd` (n_channels,) the
        noise SD before drift; `artifact_onset_s`, `artifact_duration_s` (n_bursts,) and
        `artifact_channels` (n_bursts, n_channels) bool; `corpus_words` (the index of site_word_gain).
    raw_hg_component : ndarray, shape (n_samples, n_channels), float32, or None
        Only when asked for (`simulate(..., keep_raw_hg_component=True)`; it is as large as the raw
        voltage): that noiseless high-gamma component itself, in volts, at the raw rate. Scoring a
        pipeline at ITS declared band and envelope bandwidth needs it
        (`neurovox.simulate.ground_truth_high_gamma`). Flat bad channels: 0.
    """

    envelope: np.ndarray
    baseline: np.ndarray
    lag_s: np.ndarray
    tuning_centre_mel: np.ndarray
    tuning_width_mel: np.ndarray
    amplitude: np.ndarray
    site_kind: np.ndarray
    snr_db_per_channel: np.ndarray
    bad_channels: np.ndarray
    bad_kind: list[str]
    trial_gain: np.ndarray
    ch_names: list[str]
    snr_db: float
    frame_rate_hz: float
    line_freq_hz: float
    voice: str
    sex: str
    seed: int | None
    config: dict[str, Any]
    raw_hg_envelope: np.ndarray | None = None
    raw_hg_component: np.ndarray | None = None
    encoding: str = "linear"
    model_arrays: dict = dataclasses.field(default_factory=dict)

    _OPTIONAL_ARRAYS = ("raw_hg_envelope", "raw_hg_component")  # saved only when present
    _ARRAYS = ("envelope", "baseline", "lag_s", "tuning_centre_mel", "tuning_width_mel", "amplitude",
               "snr_db_per_channel", "bad_channels", "trial_gain")

    @property
    def signal(self) -> np.ndarray:
        """Envelope minus baseline, shape (n_frames, n_channels)."""
        return self.envelope - self.baseline[None, :].astype(np.float32)

    @property
    def roles(self) -> np.ndarray:
        """(n_channels,) role of each channel (`site_kind`)."""
        return np.asarray(self.site_kind).astype(str)

    @property
    def sites(self):
        """`realistic.Sites` of a realistic simulation (the model's per-contact parameters)."""
        from neurovox.simulate.realistic import Sites

        if self.encoding != "realistic":
            raise DataError(f"GroundTruth.sites exists for the realistic encoding only; this file is {self.encoding!r}.")
        return Sites.from_arrays(self.model_arrays)

    def drive(self, component: str) -> np.ndarray:
        """(n_frames, n_channels) float32 contribution of one component of the realistic model to
        `envelope` (0 on the channels that do not carry it)."""
        from neurovox.simulate.realistic import COMPONENTS
        from neurovox.utils.check import check_option

        check_option("component", component, COMPONENTS, error=DataError)
        out = np.zeros(self.envelope.shape, np.float32)
        out[:, self.model_arrays[f"drive_{component}_channels"]] = self.model_arrays[f"drive_{component}"]
        return out

    @property
    def good_mask(self) -> np.ndarray:
        mask = np.ones(len(self.ch_names), bool)
        mask[self.bad_channels] = False
        return mask

    def save(self, out_dir: str | Path) -> tuple[Path, Path]:
        """Write `ground_truth.npz` (arrays) and `ground_truth.json` (everything else) atomically."""
        out_dir = Path(out_dir)
        arrays = {k: getattr(self, k) for k in self._ARRAYS}
        arrays.update({k: getattr(self, k) for k in self._OPTIONAL_ARRAYS if getattr(self, k) is not None})
        arrays["site_kind"] = np.asarray(self.site_kind, dtype="U20")
        clash = set(self.model_arrays) & (set(arrays) | {"site_kind"})
        assert not clash, clash
        arrays.update(self.model_arrays)
        with atomic_path(out_dir / GROUND_TRUTH_NPZ) as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, **arrays)
        info = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name not in self._ARRAYS + self._OPTIONAL_ARRAYS + ("site_kind", "model_arrays")}
        snr_definition = ("snr_db = 10 log10(var(signal) / var(noise)) per channel" if self.encoding == "linear" else
                          "snr_db: noise variance = median var(signal) of the responsive channels / 10^(snr_db / 10)")
        info.update(lag_s=[float(x) if np.isfinite(x) else None for x in np.asarray(self.lag_s, float)],
                    site_kind=list(self.site_kind), bad_channel_names=[self.ch_names[i] for i in self.bad_channels],
                    envelope_definition=f"baseline + signal, 125 Hz frames; {snr_definition}",
                    raw_hg_envelope_definition=("raw simulations only (in the npz): frame-averaged Hilbert amplitude (V) of "
                                                "the noiseless high-gamma component of the raw voltage, 125 Hz frames "
                                                "[i/125, (i+1)/125) s; the target for scoring preprocessing"))
        write_json_atomic(out_dir / GROUND_TRUTH_JSON, info)
        return out_dir / GROUND_TRUTH_NPZ, out_dir / GROUND_TRUTH_JSON

    @classmethod
    def load(cls, out_dir: str | Path) -> "GroundTruth":
        out_dir = Path(out_dir)
        npz, js = out_dir / GROUND_TRUTH_NPZ, out_dir / GROUND_TRUTH_JSON
        for p in (npz, js):
            if not p.is_file():
                raise DataError(f"ground truth file {p} is missing; write it with `neurovox simulate --out {out_dir}`.")
        info = json.loads(js.read_text())
        with np.load(npz) as z:
            arrays = {k: z[k] for k in z.files}
        kwargs = {f.name: info.get(f.name) for f in dataclasses.fields(cls)}
        kwargs.update({k: arrays[k] for k in cls._ARRAYS})
        kwargs.update({k: arrays.get(k) for k in cls._OPTIONAL_ARRAYS})
        kwargs["site_kind"] = arrays["site_kind"].astype(str)
        kwargs["encoding"] = info.get("encoding", "linear")
        known = set(cls._ARRAYS) | set(cls._OPTIONAL_ARRAYS) | {"site_kind"}
        kwargs["model_arrays"] = {k: v for k, v in arrays.items() if k not in known}
        return cls(**kwargs)


def _validate(cfg: SimulateConfig) -> None:
    check_range("simulate.n_trials", cfg.n_trials, 5, 100_000)
    check_option("simulate.encoding", cfg.encoding, ENCODINGS)
    for name in ("responsive_fraction", "sensorimotor_share", "auditory_share", "onset_share"):
        check_range(f"simulate.{name}", getattr(cfg, name), 0.0, 1.0)
    if cfg.sensorimotor_share + cfg.auditory_share > 1.0:
        raise ConfigError(f"simulate.sensorimotor_share + simulate.auditory_share must be at most 1 (the rest are "
                          f"planning sites), got {cfg.sensorimotor_share:g} + {cfg.auditory_share:g}; lower either.")
    for lo, hi in (("stg_lag_min_s", "stg_lag_max_s"), ("own_voice_gain_min", "own_voice_gain_max"),
                   ("plan_start_min_s", "plan_start_max_s"), ("stimulus_gap_min_s", "stimulus_gap_max_s")):
        if not 0 <= getattr(cfg, lo) <= getattr(cfg, hi):
            raise ConfigError(f"simulate.{lo} ({getattr(cfg, lo)}) must be >= 0 and <= simulate.{hi} ({getattr(cfg, hi)}).")
    for name in ("latency_jitter_sd_s", "site_trial_gain_sd", "drift_gain_sd", "drift_noise_sd", "artifact_rate_per_min"):
        check_range(f"simulate.{name}", getattr(cfg, name), 0.0, None)
    check_range("simulate.drift_timescale_s", cfg.drift_timescale_s, 1.0, None)
    check_range("simulate.snr_db", cfg.snr_db, -40.0, 60.0)
    if cfg.speech_peak_dbfs + abs(cfg.gain_jitter_db) > -0.5:
        raise ConfigError(f"simulate.speech_peak_dbfs + simulate.gain_jitter_db must stay below -0.5 dBFS so the "
                          f"audio does not clip, got {cfg.speech_peak_dbfs:g} + {cfg.gain_jitter_db:g} dB; lower either.")
    check_range("simulate.pause_min_s", cfg.pause_min_s, 0.2, None)
    if cfg.pause_max_s < cfg.pause_min_s:
        raise ConfigError(f"simulate.pause_max_s ({cfg.pause_max_s}) must be >= simulate.pause_min_s ({cfg.pause_min_s}).")
    check_range("simulate.bad_fraction", cfg.bad_fraction, 0.0, 0.5)
    check_range("simulate.sensorimotor_fraction", cfg.sensorimotor_fraction, 0.0, 1.0)
    if cfg.pink_fraction < 0 or cfg.common_fraction < 0 or cfg.pink_fraction + cfg.common_fraction > 1:
        raise ConfigError("simulate.pink_fraction and simulate.common_fraction must be >= 0 and sum to at most 1, "
                          f"got {cfg.pink_fraction} and {cfg.common_fraction}.")
    check_range("simulate.n_seeg_shafts", cfg.n_seeg_shafts, 1, 26)
    check_range("simulate.raw_sfreq_hz", cfg.raw_sfreq_hz, 2.2 * cfg.hg_band_hz[1], None)
    if not 0 < cfg.hg_band_hz[0] < cfg.hg_band_hz[1]:
        raise ConfigError(f"simulate.hg_band_hz must be (low, high) with 0 < low < high, got {cfg.hg_band_hz}.")
    check_range("simulate.line_freq_hz", cfg.line_freq_hz, 40.0, 70.0)
    if cfg.lead_min_s > cfg.lead_max_s:
        raise ConfigError(f"simulate.lead_min_s ({cfg.lead_min_s}) must be <= simulate.lead_max_s ({cfg.lead_max_s}).")


def _rng(rng: np.random.Generator | int | None) -> tuple[np.random.Generator, int | None]:
    if rng is None:
        return np.random.default_rng(0), 0
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng)), int(rng)
    if isinstance(rng, np.random.Generator):
        return rng, None
    raise TypeError(f"rng must be a numpy Generator or an int seed, got {type(rng).__name__}.")


def simulate(cfg: SimulateConfig, rng: np.random.Generator | int | None = None,
             kinds: tuple[str, ...] = ("high_gamma",),
             keep_raw_hg_component: bool = False) -> tuple[dict[str, Recording], GroundTruth]:
    """Simulate one participant and render the requested kinds from the same ground truth.

    The high-gamma output is identical whatever `kinds` holds (each stage draws from its own
    child generator). Returns ({kind: Recording}, GroundTruth). `keep_raw_hg_component` (raw kind
    only) also keeps `GroundTruth.raw_hg_component` (as large as the raw voltage); it changes no
    simulated number.
    """
    _validate(cfg)
    for k in kinds:
        check_option("kind", k, ("high_gamma", "raw"))
    gen, seed = _rng(rng)
    g_layout, g_speech, g_tuning, g_noise, g_raw = (np.random.default_rng(s) for s in gen.integers(0, 2**63, 5))
    # the realistic model's trial variability: always the participant's own (drawn first, as it always was)
    g_var = np.random.default_rng(g_tuning.integers(2**63)) if cfg.encoding == "realistic" else None
    if cfg.encoding_seed >= 0:  # layout and sites shared by every participant with this encoding_seed
        g_layout, g_tuning = (np.random.default_rng(s) for s in
                              np.random.default_rng(cfg.encoding_seed).integers(0, 2**63, 2))
    corpus = load_corpus()
    voice = cfg.voice or corpus.voices[int(g_speech.integers(len(corpus.voices)))]
    check_option("simulate.voice", voice, corpus.voices)
    sex = corpus.voice_sex[voice]
    layout = make_layout(cfg.layout, g_layout, cfg.n_seeg_shafts)
    timeline = build_timeline(cfg, corpus, voice, g_speech)
    fr = dsp.FRAME_RATE_HZ

    if cfg.encoding == "linear":
        tuning = neural.make_tuning(layout, cfg, g_tuning)
        feature = speech_feature(timeline.clean)
        trial_gain = np.exp(cfg.trial_gain_sd * g_tuning.standard_normal(len(timeline.trials)))
        gain = neural.frame_gain(timeline.segments_s, trial_gain, timeline.n_frames, fr)
        signal = neural.encode(feature, tuning, gain, fr, cfg.temporal_sd_s)
        noise = neural.make_noise(signal, tuning.snr_db, cfg, g_noise, fr)
        nan = np.full(layout.n_channels, np.nan)
        truth = dict(lag_s=tuning.lag_s, tuning_centre_mel=tuning.centre_mel, tuning_width_mel=tuning.width_mel,
                     amplitude=tuning.amplitude, site_kind=np.where(tuning.sensorimotor, "sensorimotor", "auditory"),
                     snr_db_per_channel=tuning.snr_db, model_arrays={})
    else:
        res = realistic.encode_session(cfg, layout, timeline, corpus, voice, g_tuning, g_var, g_noise, fr)
        signal, noise, trial_gain = res.signal, res.noise, res.trial_gain
        nan = np.full(layout.n_channels, np.nan)
        truth = dict(lag_s=res.sites.lag_s, tuning_centre_mel=nan, tuning_width_mel=nan.copy(),
                     amplitude=res.sites.amplitude, site_kind=res.sites.role.astype("U20"),
                     snr_db_per_channel=res.sites.snr_db, model_arrays=res.arrays)
    baseline = np.ones(layout.n_channels, np.float32)
    bad_idx, bad_kind = neural.choose_bad(layout.n_channels, cfg.bad_fraction, g_noise)
    channels = layout.channels.copy()
    channels.loc[bad_idx, "bad"] = True

    meta = RecordingMeta(participant_id=cfg.participant_id, sex=sex, hemisphere=cfg.hemisphere,
                         grid_density=layout.grid_density, source_format="simulated",
                         language="en",  # the shipped corpus: English words (flite and espeak-ng voices)
                         notes=[f"simulated: voice {voice}, layout {layout.name}, snr_db {cfg.snr_db:g}, seed {seed}"
                                + ("" if cfg.encoding == "linear" else f", encoding {cfg.encoding}"),
                                f"line noise {cfg.line_freq_hz:g} Hz (raw kind)"])
    recs: dict[str, Recording] = {}
    raw_hg_envelope = raw_hg_component = None
    if "high_gamma" in kinds:
        hg = baseline[None, :] + signal + noise
        hg = neural.apply_bad(hg, noise, bad_idx, bad_kind, np.random.default_rng(g_noise.integers(2**63)))
        recs["high_gamma"] = Recording(neural=hg.astype(np.float32), neural_sfreq_hz=fr, neural_kind="high_gamma",
                                       audio=timeline.audio, audio_sfreq_hz=dsp.SAMPLE_RATE_HZ,
                                       channels=channels.copy(), trials=timeline.trials.copy(), meta=meta,
                                       neural_unit="a.u.")
    if "raw" in kinds:
        modulator = np.maximum(baseline[None, :] + signal + noise, 0.05)
        raw_hg_envelope = np.empty(modulator.shape, np.float32)
        if keep_raw_hg_component:
            n_raw = int(round(modulator.shape[0] / fr * cfg.raw_sfreq_hz))   # make_raw's length
            raw_hg_component = np.empty((n_raw, modulator.shape[1]), np.float32)
        raw = neural.make_raw(modulator, cfg, g_raw, fr, bad_idx, bad_kind, hg_envelope_out=raw_hg_envelope,
                              hg_component_out=raw_hg_component)
        recs["raw"] = Recording(neural=raw, neural_sfreq_hz=cfg.raw_sfreq_hz, neural_kind="raw",
                                audio=timeline.audio, audio_sfreq_hz=dsp.SAMPLE_RATE_HZ,
                                channels=channels.copy(), trials=timeline.trials.copy(),
                                meta=dataclasses.replace(meta, notes=list(meta.notes)), neural_unit="V")
    gt = GroundTruth(
        envelope=(baseline[None, :] + signal).astype(np.float32), baseline=baseline, **truth,
        bad_channels=bad_idx.astype(int), bad_kind=list(bad_kind), trial_gain=trial_gain,
        ch_names=channels["name"].tolist(), snr_db=float(cfg.snr_db), frame_rate_hz=fr,
        line_freq_hz=float(cfg.line_freq_hz), voice=voice, sex=sex, seed=seed, config=to_dict(cfg),
        raw_hg_envelope=raw_hg_envelope, raw_hg_component=raw_hg_component, encoding=cfg.encoding,
    )
    return recs, gt


def simulate_participant(cfg: SimulateConfig, rng: np.random.Generator | int | None = None,
                         kind: str | None = None, keep_raw_hg_component: bool = False) -> tuple[Recording, GroundTruth]:
    """Simulate one participant; returns (Recording, GroundTruth).

    Parameters
    ----------
    cfg : SimulateConfig
    rng : numpy Generator or int seed (default 0)
        All randomness comes from here; the same seed gives identical arrays.
    kind : {"high_gamma", "raw"}, optional
        Output kind (default: `cfg.kind`, or "high_gamma" when that is "both"; use `simulate` for both).
    keep_raw_hg_component : bool
        Raw kind: also keep `GroundTruth.raw_hg_component` (see `simulate`).
    """
    kind = kind or ("high_gamma" if cfg.kind == "both" else cfg.kind)
    recs, gt = simulate(cfg, rng, (kind,), keep_raw_hg_component)
    return recs[kind], gt
