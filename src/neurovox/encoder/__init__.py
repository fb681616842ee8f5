"""neurovox.encoder: the speech encoder and stage-1 training of the speech autoencoder.

    model = load_speech_model(run_dir)           # SpeechModel(encoder, synth), eval mode
    raw = model.encoder(spec_power)              # (batch, n_frames, 256) -> (batch, n_frames, 18)
    out = model.synth(raw)                       # SynthOutput(wave, spec_power, controls)
"""

from neurovox.encoder.model import EncoderConfig, SpeechEncoder
from neurovox.encoder.train import (SpeechModel, SpeechRunConfig, SpeechTrainConfig, load_speech_model,
                                    train_speech_model)

__all__ = ["EncoderConfig", "SpeechEncoder", "SpeechModel", "SpeechRunConfig", "SpeechTrainConfig",
           "load_speech_model", "train_speech_model"]
