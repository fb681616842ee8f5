"""neurovox.synth: the 18-parameter differentiable formant synthesizer and its scale functions.

    synth = FormantSynth(SynthConfig(pitch_range="female"), noise_power=prepared.noise_power)
    out = synth(raw)                  # raw: (batch, n_frames, 18) network outputs
    out.wave                          # (batch, n_frames * 128) audio at 16 kHz
    out.spec_power                    # (batch, n_frames, 256) == dsp.stft_power(out.wave)
    params_to_vector(out.controls)    # (batch, n_frames, 18) interpretable parameters
"""

from neurovox.synth.formant import (
    FORMANT_RANGES_HZ,
    N_FORMANTS,
    N_RAW,
    PARAM_NAMES,
    PITCH_RANGES_HZ,
    FormantSynth,
    SynthConfig,
    SynthOutput,
    params_to_vector,
    vector_to_params,
)
from neurovox.synth.scale import exp_sigmoid, hz_to_unit, sigmoid_to_hz, unit_to_hz

__all__ = ["FORMANT_RANGES_HZ", "N_FORMANTS", "N_RAW", "PARAM_NAMES", "PITCH_RANGES_HZ", "FormantSynth",
           "SynthConfig", "SynthOutput", "exp_sigmoid", "hz_to_unit", "params_to_vector", "sigmoid_to_hz",
           "unit_to_hz", "vector_to_params"]
