"""Closed-loop decoding over Lab Streaming Layer (LSL): replay a recording as a live stream, decode a live
stream frame by frame with a causal decoder, and stream the speech out.

    neurovox replay --data FILE --name sim01                 # the recording's neural frames (and audio) as LSL outlets
    neurovox stream --run RUN --source sim01 --out-wav out.wav --stats latency.json

- `lsl.py`: pylsl set-up (machine scope by default: nothing leaves this computer), outlets and resolution.
- `vocoder.py`: `FrameVocoder`, mel dB frames -> 128 audio samples each, without look-ahead.
- `replay.py` / `stream.py`: the two commands' loops.
"""
