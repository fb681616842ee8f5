"""`SimulateConfig`: every knob of a simulated participant (flat, typed, a unit on every field)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

LAYOUTS = ("grid8x8", "hybrid128", "hybrid225", "seeg")
SIM_KINDS = ("high_gamma", "raw", "both")
ENCODINGS = ("realistic", "linear")
TASKS = ("auditory_repetition", "auditory_naming", "sentence_completion", "word_reading", "picture_naming")


@dataclass
class SimulateConfig:
    """Configuration of `simulate_participant` (section `simulate` of the run config)."""

    # -- who and what
    participant_id: str = "sim01"             # participant id written into the files
    layout: Literal["grid8x8", "hybrid128", "hybrid225", "seeg"] = "grid8x8"  # electrode layout
    kind: Literal["high_gamma", "raw", "both"] = "both"  # output kind(s) the CLI writes
    encoding: Literal["realistic", "linear"] = "realistic"  # encoding model: realistic (nonlinear, components) or linear
    voice: str = ""                           # corpus voice name ("" = drawn from the seed); see load_corpus().voices
    hemisphere: Literal["left", "right"] = "left"  # implanted hemisphere (metadata only)
    n_seeg_shafts: int = 6                    # number of sEEG shafts (layout "seeg"), 8-16 contacts each
    encoding_seed: int = -1                   # seed of the electrode layout and the encoding sites (what each contact
                                              # encodes, where); -1 = from the participant's seed. Participants with
                                              # the same encoding_seed share that structure, not their voice,
                                              # timeline, trial variability or noise (cross-participant decoding)
    # -- speech timeline
    n_trials: int = 300                       # number of spoken words, split evenly over the 5 tasks
    lead_in_s: float = 1.5                    # silence before the first trial (s)
    pause_min_s: float = 1.0                  # shortest pause between one word's offset and the next onset (s)
    pause_max_s: float = 2.0                  # longest such pause (s)
    onset_jitter_s: float = 0.15              # SD of the response-time jitter added to each onset (s)
    rate_jitter: float = 0.08                 # max relative change of speaking rate per trial (fraction)
    speech_peak_dbfs: float = -6.0            # peak level of an utterance before the per-trial gain (dB re full scale)
    gain_jitter_db: float = 3.0               # max per-trial loudness change (dB)
    audio_noise_dbfs: float = -50.0           # RMS of the microphone background noise (dB re full scale)
    # -- encoding model (neural high gamma from the speech); the linear model uses all of these, the
    #    realistic one the lead range, the tuning field length scale and the trial gain
    sensorimotor_fraction: float = 0.5        # fraction of contacts that are sensorimotor (lead the audio)
    lead_min_s: float = 0.05                  # shortest lead of a sensorimotor site (s)
    lead_max_s: float = 0.2                   # longest lead of a sensorimotor site (s)
    auditory_lag_s: float = 0.1               # mean delay of an auditory site after the audio (s)
    auditory_lag_sd_s: float = 0.015          # spread of the auditory delays (s)
    tuning_width_min_mel: float = 3.0         # narrowest spectral tuning (SD, in mel bins of 80)
    tuning_width_max_mel: float = 12.0        # broadest spectral tuning (SD, in mel bins of 80)
    temporal_sd_s: float = 0.016              # SD of the symmetric temporal integration window (s)
    spatial_length_mm: float = 15.0           # length scale of the spatially smooth tuning fields (mm)
    trial_gain_sd: float = 0.25               # SD of the per-trial log gain of the neural response (natural log)
    # -- noise
    snr_db: float = 0.0                       # per-channel SNR: var(noiseless envelope) / var(noise), in dB
    snr_spread_db: float = 0.0                # per-channel SNRs drawn uniformly in snr_db +- this (dB)
    pink_fraction: float = 0.5                # share of the noise variance that is pink (1/f) per channel
    common_fraction: float = 0.25             # share of the noise variance common to all channels (pink)
    bad_fraction: float = 0.04                # fraction of bad channels (at least 1), half flat, half noisy
    # -- raw voltage output
    raw_sfreq_hz: float = 1024.0              # sampling rate of the raw voltage (Hz)
    hg_band_hz: tuple[float, float] = (70.0, 170.0)  # band of the high-gamma carrier (Hz)
    raw_hg_uv: float = 4.0                    # RMS of the high-gamma carrier at baseline (microvolts)
    raw_background_uv: float = 30.0           # RMS of the 1/f background (microvolts)
    raw_white_uv: float = 1.0                 # RMS of the amplifier white noise (microvolts)
    line_freq_hz: float = 60.0                # mains frequency (50 or 60 Hz)
    line_noise_uv: float = 15.0               # amplitude of the mains fundamental (microvolts); harmonics smaller
    # -- realistic encoding model (encoding "realistic"; docs/simulator.md gives the published fact behind each)
    responsive_fraction: float = 0.45         # fraction of contacts that respond to speech (a third to a half)
    sensorimotor_share: float = 0.45          # share of the responsive contacts that are articulatory (vSMC)
    auditory_share: float = 0.35              # share that are auditory (STG); the rest are planning (IFG/premotor)
    onset_share: float = 0.4                  # share of the auditory contacts that are onset (transient) sites
    stg_lag_min_s: float = 0.08               # shortest delay of an auditory site after the sound (s)
    stg_lag_max_s: float = 0.15               # longest such delay (s)
    own_voice_gain_min: float = 0.2           # weakest response to one's own voice, relative to heard speech
    own_voice_gain_max: float = 0.8           # strongest such response (speaker-induced suppression 20-80 %)
    plan_start_min_s: float = 0.4             # shortest time from planning-ramp start to speech onset (s)
    plan_start_max_s: float = 0.9             # longest such time (s)
    word_identity_depth: float = 0.3          # SD of the per-word gain of planning sites (fraction; weak identity code)
    stimulus_gap_min_s: float = 0.3           # shortest gap from a heard stimulus' offset to the spoken response (s)
    stimulus_gap_max_s: float = 0.7           # longest such gap (s)
    latency_jitter_sd_s: float = 0.03         # SD of the per-trial latency of the neural response (s)
    site_trial_gain_sd: float = 0.15          # SD of the per-trial, per-contact log gain (natural log), on top of trial_gain_sd
    drift_gain_sd: float = 0.2                # SD of the slow log-gain drift of each contact over the session (natural log)
    drift_noise_sd: float = 0.2               # SD of the slow log drift of each contact's noise level (natural log)
    drift_timescale_s: float = 120.0          # time scale of both drifts (s)
    artifact_rate_per_min: float = 1.0        # mean number of artefact bursts per minute
    extra: dict = field(default_factory=dict)  # free-form notes copied into the ground truth (no effect)
