"""neurovox.decoders: stage-2 neural decoders (approach A) and the linear baseline.

    layout = layout_from_channels(prepared.channels)             # 8x8, 15x15 hybrid, any rectangle
    model = build_decoder("resnet", n_channels=64, n_out=N_RAW, causal=True, layout=layout)
    raw = model(neural_windows, n_target=128)                    # (batch, 128, N_RAW) synth controls
    decoder = load_trial_decoder(run_dir)                        # TrialDecoder for evaluation
    stream = StreamingDecoder(model); raw_t = stream.push(frame) # one 8 ms frame at a time
"""

from neurovox.decoders.base import GRID_MODELS, MODEL_NAMES, NeuralDecoder, build_decoder, decoder_from_args
from neurovox.decoders.decode import load_model, load_trial_decoder
from neurovox.decoders.layout import GridLayout, GridMapper, layout_from_channels, rectangular_layout
from neurovox.decoders.linear import LinearBaseline, mel_db_to_audio
from neurovox.decoders.streaming import StreamingDecoder, measure_latency

__all__ = ["GRID_MODELS", "MODEL_NAMES", "NeuralDecoder", "build_decoder", "decoder_from_args",
           "load_model", "load_trial_decoder", "GridLayout", "GridMapper", "layout_from_channels",
           "rectangular_layout", "LinearBaseline", "mel_db_to_audio", "StreamingDecoder", "measure_latency"]
