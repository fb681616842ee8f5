"""Does a causal decoder's offline score hold when it decodes the whole session live (issue 16)?

    .venv/bin/python benchmarks/causal_history.py --data FILE RUN [RUN ...]

`neurovox evaluate` scores a causal decoder on test windows that start `n_lead_frames` (16 frames, 128 ms)
before the first target frame, each from a fresh state; `neurovox stream` runs the same model over the whole
session, its state carried from the first frame. This script scores each causal RUN (a finished `train
decoder --causal` run) on the same test trials, same metric (tilt-removed PCC of the mel dB over speech
frames), with H more frames of history before every window (H = 32, 125, 375, 1250: 0.26-10 s) and in one
pass over the whole session, and prints the paired gain over the usual windows (bootstrap 95% CI over the test
trials). Equal scores mean the offline figure is the live one and that more history would not help.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import yaml

HISTORY_FRAMES = (32, 125, 375, 1250)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="the recording the runs were trained on")
    parser.add_argument("runs", nargs="+", metavar="RUN", help="finished causal deep decoder runs (mel head)")
    args = parser.parse_args()

    from neurovox.decoders.decode import DeepTrialDecoder, load_trial_decoder
    from neurovox.evaluate.evaluate import build_test_set
    from neurovox.evaluate.metrics import paired_gain, pcc_tilt_removed

    for run in args.runs:
        dec = load_trial_decoder(run)
        if not (isinstance(dec, DeepTrialDecoder) and dec.causal and dec.target == "mel"):
            raise SystemExit(f"{run}: a causal deep decoder with the mel head is needed (this script compares "
                             "its windows with a live pass).")
        test = build_test_set(dec, yaml.safe_load((Path(run) / "config.yaml").read_text()), args.data)
        series, starts = test.neural_series, test.start_frames  # normalised (n_frames, n_channels); window starts
        n_window, n_target = test.neural_windows.shape[1], dec.n_target_frames

        def score(out: torch.Tensor) -> np.ndarray:  # standardised mel (n, n_target, 80) -> per-trial PCC
            mel = (out * dec.mel_sd_db + dec.mel_mean_db).numpy()
            return pcc_tilt_removed(test.mel_db, mel, test.train_mel_mean_db, test.speech_mask)

        scores = {}
        with torch.no_grad():
            for h in (0, *HISTORY_FRAMES):
                first = np.maximum(starts - h, 0)
                scores[f"{h} frames more history"] = score(torch.cat([
                    dec.model(torch.from_numpy(series[a:s + n_window][None]), n_target) for a, s in zip(first, starts)]))
            whole = dec.model.forward_frames(torch.from_numpy(series[None]))[0]  # one pass, as `stream` runs live
            targets = starts + dec.n_lead_frames
            scores["whole session, one pass"] = score(torch.stack([whole[t:t + n_target] for t in targets]))
        usual = scores["0 frames more history"]
        print(f"{Path(run).name} ({dec.model_name}, {len(usual)} test trials)")
        for name, s in scores.items():
            g = paired_gain(s, usual, generator=np.random.default_rng(0))
            print(f"  {name:26s} tilt-removed PCC {np.mean(s):.4f}   minus the usual windows "
                  f"{g['mean']:+.4f} [{g['ci_low']:+.4f}, {g['ci_high']:+.4f}]", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
