"""The README's main command, `neurovox demo --quick`, end to end (about 4 min on 2 idle cores; slow group)."""

import json

import pytest

from neurovox.cli import main


@pytest.mark.slow
def test_quick_demo_decoders_clearly_beat_chance(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NEUROVOX_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "gain over no-neural" in printed and "Seen / unseen test words" in printed and "ASR word acc." in printed
    html = (out / "report" / "report.html").read_text()
    assert "no-neural" in html and "PCC, tilt removed" in html
    for name in ("linear", "lstm", "lstm_causal"):
        result = json.loads((out / "eval" / name / "metrics.json").read_text())
        # On the realistic participant (100 words, 0 dB) the margins over chance are modest (measured tilt-removed
        # PCC vs shuffled chance: linear 0.490 vs 0.172, LSTM 0.439 vs 0.161, causal LSTM 0.375 vs 0.125; lowest CI
        # bound of the paired gains +0.062); a decoder beats chance when its paired gain's CI lies above 0.
        for metric in ("pcc", "pcc_tilt"):
            gain = result["gain"]["chance_shuffled"][metric]
            assert gain["above"] and gain["ci_low"] > 0, (name, metric, gain)
        # every decoder row carries the no-neural baselines and its paired gain over them
        for base in ("onset_mean", "constant_spectrum"):
            for metric in ("pcc", "pcc_tilt", "stoi"):
                gain = result["gain"][base][metric]
                assert gain["n"] >= 40 and gain["ci_low"] <= gain["mean"] <= gain["ci_high"], (name, base, metric)
        # ASR word accuracy with its chance and the reference audio's accuracy (measured 0.76 of 44 words)
        asr = result["asr"]
        assert asr["applies"] and asr["chance_uniform"] == pytest.approx(1 / asr["vocabulary_size"])
        assert asr["reference"]["asr_word"]["mean"] >= 0.6 and "asr_word" in result["metrics"]
        assert result["by_word"]["seen"]["n_trials"] + result["by_word"]["unseen"]["n_trials"] == result["n_trials"]
        # every demo decoder predicts the mel spectrogram: the formant resynthesis bounds none of them
        assert result["ceiling"] is None and result["synthesis"] == "griffin_lim", name
    # A rerun resumes: every stage is found finished and skipped.
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    assert capsys.readouterr().out.count("already done: skipped") == 7
