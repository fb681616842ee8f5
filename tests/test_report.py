"""The HTML report: every referenced file exists, the metric table matches metrics.json, training
curves are read from TensorBoard logs or metrics.csv, and the comparison report links its entries."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from neurovox.evaluate.evaluate import evaluate_test_set
from neurovox.report import figures, write_comparison_report
from tests.conftest import PerfectDecoder, make_test_set


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.srcs: list[tuple[str, str]] = []
        self.links: list[str] = []
        self.cells: list[dict[str, str]] = []
        self.scripts = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("img", "audio", "source") and "src" in a:
            self.srcs.append((tag, a["src"]))
        if tag == "a" and "href" in a:
            self.links.append(a["href"])
        if tag == "td" and "data-metric" in a:
            self.cells.append(a)
        if tag in ("script", "link"):
            self.scripts += 1


def _parse(path: Path) -> _Collector:
    c = _Collector()
    c.feed(path.read_text())
    return c


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    from torch.utils.tensorboard import SummaryWriter

    root = tmp_path_factory.mktemp("report")
    import dataclasses

    test = make_test_set(str(tmp_path_factory.mktemp("speech")))
    # a no-neural baseline: another trial's spectrogram (the report must show it and the gain over it)
    test = dataclasses.replace(test, baselines={"onset_mean": np.roll(test.mel_db, 1, axis=0)})
    logs = root / "logs"
    writer = SummaryWriter(str(logs / "version_0"))
    for step in range(20):
        writer.add_scalar("train/loss", 1.0 / (step + 1), step)
        writer.add_scalar("val/loss", 1.2 / (step + 1), step)
    writer.close()
    out = root / "eval"
    evaluate_test_set(PerfectDecoder(test), test, out, seed=1, resynthesize=lambda a: a * 0.9, logs_dir=logs,
                      n_boot=200, max_trial_figures=2, title="report test")
    return out


def test_report_files_exist_and_table_matches(report_dir):
    html_path = report_dir / "report.html"
    parsed = _parse(html_path)
    assert parsed.scripts == 0  # self-contained: no JS, no external stylesheet
    kinds = {tag for tag, _ in parsed.srcs}
    assert kinds == {"img", "audio"}
    for _, src in parsed.srcs:
        assert not src.startswith(("http:", "https:", "/")), src
        f = report_dir / src
        assert f.is_file() and f.stat().st_size > 0, src
    for href in parsed.links:
        if not href.startswith("#"):
            assert (report_dir / href).is_file(), href
    imgs = [s for t, s in parsed.srcs if t == "img"]
    assert "figures/training_curves.png" in imgs
    assert sum("_spectrogram.png" in s for s in imgs) == 2 and sum("_params.png" in s for s in imgs) == 2
    assert sum(t == "audio" for t, _ in parsed.srcs) == 2 * 4  # reference, decoded, resynthesis, no-neural baseline

    saved = json.loads((report_dir / "metrics.json").read_text())
    checked = 0
    for cell in parsed.cells:
        kind, metric = cell["data-kind"], cell["data-metric"]
        if "data-value" not in cell:  # an empty cell ("-") is only right where metrics.json has no value
            assert kind.startswith("gain_") and metric == "pcc_per_bin", (kind, metric)
            continue
        if kind.startswith("gain_"):
            value = saved["gain"][kind[len("gain_"):]][metric]["mean"]
            assert cell["data-above"] == str(saved["gain"][kind[len("gain_"):]][metric]["above"]).lower()
        elif kind.startswith("baseline_"):
            value = saved["baselines"][kind[len("baseline_"):]][metric]["mean"]
        elif kind.startswith("chance_"):
            value = saved["chance"][kind[len("chance_"):]][metric]["mean"]
        else:
            value = {"decoded": saved["metrics"], "ceiling": saved["ceiling"]}[kind][metric]["mean"]
        assert float(cell["data-value"]) == pytest.approx(value, rel=1e-12), (kind, metric)
        checked += 1
    # 7 metrics x (decoded, 2 chance levels, baseline, gain over it, ceiling), less the per-bin PCC's gain
    # (the per-bin PCC pools trials, so it has no paired per-trial gain)
    assert checked == 7 * 6 - 1
    assert saved["gain"]["onset_mean"]["pcc"]["above"]  # the perfect decoder beats another trial's spectrogram
    text = html_path.read_text()
    assert "beats the no-neural baseline" in text
    text = html_path.read_text()
    assert f"{saved['metrics']['stoi']['mean']:.3f}" in text


def test_training_scalars_from_csv(tmp_path):
    (tmp_path / "metrics.csv").write_text("epoch,step,train_loss,val_loss\n0,10,1.0,\n0,10,,1.5\n1,20,0.5,\n1,20,,0.9\n")
    scalars = figures.read_training_scalars(tmp_path)
    assert scalars["train_loss"][1].tolist() == [1.0, 0.5] and scalars["val_loss"][0].tolist() == [10, 20]
    assert figures.training_curves(tmp_path / "c.png", scalars).stat().st_size > 0
    assert figures.read_training_scalars(tmp_path / "missing") == {}
    assert figures.training_curves(tmp_path / "d.png", {}) is None


def test_comparison_report(report_dir, tmp_path):
    saved = json.loads((report_dir / "metrics.json").read_text())
    entries = [{"name": "perfect", "metrics": saved["metrics"], "chance": saved["chance"], "ceiling": saved["ceiling"],
                "report": str(report_dir / "report.html")},
               {"name": "linear <baseline>", "metrics": {"pcc": {"mean": 0.4, "sem": 0.02}},
                "chance": {"shuffled": {"pcc": {"mean": 0.1}}}, "n_folds": 5}]
    path = write_comparison_report(entries, tmp_path / "cmp")
    parsed = _parse(path)
    for _, src in parsed.srcs:
        assert (path.parent / src).stat().st_size > 0
    assert [(path.parent / h).resolve() for h in parsed.links] == [(report_dir / "report.html").resolve()]
    values = {(c["data-metric"], c.get("data-value")) for c in parsed.cells if "data-value" in c}
    assert ("pcc", repr(0.4)) in values
    assert "linear &lt;baseline&gt;" in path.read_text()
    assert np.isclose(float([c for c in parsed.cells if c["data-metric"] == "stoi"][0]["data-value"]),
                      saved["metrics"]["stoi"]["mean"])
