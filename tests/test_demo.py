"""The README's main command, `neurovox demo --quick`, end to end (about 4 min on 2 idle cores)."""

import json

from neurovox.cli import main


def test_quick_demo_decoders_clearly_beat_chance(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NEUROVOX_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    assert (out / "report" / "report.html").stat().st_size > 0
    for name in ("linear", "resnet", "resnet_causal"):
        result = json.loads((out / "eval" / name / "metrics.json").read_text())
        pcc = result["metrics"]["pcc"]["mean"]
        chance = result["chance"]["shuffled"]["pcc"]["mean"]
        ceiling = result["ceiling"]["pcc"]["mean"]
        # Measured (80 quick epochs): linear 0.913 vs 0.528, causal resnet 0.715 vs 0.426; ceiling 0.843.
        assert pcc > chance + 0.2, (name, pcc, chance)
        assert result["metrics"]["stoi"]["mean"] > result["chance"]["shuffled"]["stoi"]["mean"] + 0.15, name
        assert 0.75 < ceiling <= 1.0
    # A rerun resumes: every stage is found finished and skipped.
    capsys.readouterr()
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    assert capsys.readouterr().out.count("already done: skipped") == 8
