"""Self-contained HTML reports: one page, its PNG and WAV files beside it, relative links only.

No JavaScript, no web fonts, no network: the folder can be zipped, mailed and opened offline.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

import numpy as np

from neurovox.report import figures
from neurovox.utils.files import write_text_atomic

MAX_TRIAL_FIGURES = 12

CSS = """
:root { --fg:#212529; --muted:#6c757d; --line:#dee2e6; --bg:#f8f9fa; --accent:#4263eb; --good:#2f9e44; }
* { box-sizing: border-box; }
body { font: 14px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--fg);
       margin: 0; background: #fff; }
main { max-width: 1180px; margin: 0 auto; padding: 28px 32px 60px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 36px 0 10px; padding-bottom: 4px; border-bottom: 2px solid var(--line); }
h3 { font-size: 15px; margin: 18px 0 6px; }
.sub { color: var(--muted); margin: 0 0 18px; }
.meta { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; font-size: 13px;
        background: var(--bg); border: 1px solid var(--line); border-radius: 6px; padding: 10px 14px; }
.meta dt { color: var(--muted); } .meta dd { margin: 0; font-family: ui-monospace, Menlo, Consolas, monospace; word-break: break-all; }
table { border-collapse: collapse; width: 100%; font-size: 13px; margin: 8px 0; }
th, td { padding: 6px 10px; border-bottom: 1px solid var(--line); text-align: right; white-space: nowrap; }
th { background: var(--bg); font-weight: 600; position: sticky; top: 0; }
th:first-child, td:first-child { text-align: left; }
td.name { font-weight: 600; } td.desc { color: var(--muted); font-size: 12px; white-space: normal; text-align: left; }
tbody tr:hover { background: #f1f3ff; }
.v { font-variant-numeric: tabular-nums; } .ci { color: var(--muted); font-size: 11px; display: block; }
.dec { color: var(--accent); font-weight: 600; } .ceil { color: var(--good); }
.above { color: var(--good); font-size: 11px; } .below { color: #c92a2a; font-size: 11px; }
.note { color: var(--muted); font-size: 12px; margin: 4px 0 0; }
.warn { background: #fff4e6; border: 1px solid #ffd8a8; border-radius: 6px; padding: 8px 12px; }
figure { margin: 14px 0 24px; } figure img { max-width: 100%; border: 1px solid var(--line); border-radius: 4px; }
.trial { border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; margin: 14px 0; }
.trial h3 { margin-top: 0; } .players { display: flex; gap: 24px; flex-wrap: wrap; align-items: center; }
.players label { font-size: 12px; color: var(--muted); display: block; }
audio { height: 32px; width: 260px; }
a { color: var(--accent); }
.figs { display: flex; gap: 18px; flex-wrap: wrap; align-items: flex-start; }
.trials td:nth-child(2), .trials th:nth-child(2) { text-align: left; }
"""


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "&ndash;"
    return f"{float(x):.{digits}f}"


def _cell(stats: dict[str, Any] | None, metric: str, kind: str, css: str = "") -> str:
    if not stats or metric not in stats:
        return f'<td data-metric="{metric}" data-kind="{kind}">&ndash;</td>'
    s = stats[metric]
    mean = s.get("mean")
    value_attr = "" if mean is None else f' data-value="{float(mean)!r}"'
    sem = s.get("sem")
    main = _fmt(mean) + (f" &plusmn; {_fmt(sem)}" if sem is not None else "")
    ci = ""
    if s.get("ci_low") is not None and s.get("ci_high") is not None:
        ci = f'<span class="ci">95% CI [{_fmt(s["ci_low"])}, {_fmt(s["ci_high"])}]</span>'
    return f'<td class="v {css}" data-metric="{metric}" data-kind="{kind}"{value_attr}>{main}{ci}</td>'


def html_page(title: str, body: str) -> str:
    """A self-contained HTML page (inline CSS) around `body` (every neurovox report)."""
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head>\n<body><main>\n{body}\n</main></body></html>\n")


def _gain_cell(gain: dict[str, Any] | None, metric: str, kind: str) -> str:
    """Paired gain with its CI and Wilcoxon p; labelled when the CI includes 0."""
    g = (gain or {}).get(metric)
    if not g or g.get("mean") is None:
        return f'<td data-metric="{metric}" data-kind="{kind}">&ndash;</td>'
    verdict = ('<span class="above">CI above 0</span>' if g.get("above")
               else '<span class="below">CI below 0: worse than the baseline</span>'
               if (g.get("ci_high") is not None and g["ci_high"] < 0)
               else '<span class="below">CI includes 0: no gain shown</span>')
    return (f'<td class="v" data-metric="{metric}" data-kind="{kind}" data-value="{float(g["mean"])!r}" '
            f'data-above="{str(bool(g.get("above"))).lower()}">{"+" if g["mean"] >= 0 else ""}{_fmt(g["mean"])}'
            f'<span class="ci">95% CI [{_fmt(g.get("ci_low"))}, {_fmt(g.get("ci_high"))}], '
            f'p {_fmt(g.get("p_wilcoxon"), 4)}</span>{verdict}</td>')


def metric_table(result: dict[str, Any]) -> str:
    """Decoded, chance (shuffled, circular shift), no-neural baselines, gain over them, ceiling, every metric."""
    info = result.get("metric_info", {})
    chance = result.get("chance") or {}
    baselines = result.get("baselines") or {}
    base_info = result.get("baseline_info") or {}
    gain = result.get("gain") or {}
    ceiling = result.get("ceiling")
    chance_kinds = [k for k in ("shuffled", "circular_shift") if k in chance]
    base_kinds = [k for k in ("constant_spectrum", "onset_mean") if k in baselines]
    head = ("<tr><th>metric</th><th>decoded</th>" +
            "".join(f"<th>chance: {k.replace('_', ' ')}</th>" for k in chance_kinds) +
            "".join(f"<th>no-neural: {html.escape(base_info.get(k, {}).get('label', k))}</th>" for k in base_kinds) +
            "".join(f"<th>gain over {html.escape(base_info.get(k, {}).get('label', k))}</th>" for k in base_kinds) +
            ("<th>ceiling (formant resynthesis)</th>" if ceiling else "") + "<th>n</th><th></th></tr>")
    rows = []
    for metric, stats in result["metrics"].items():
        meta = info.get(metric, {})
        label = html.escape(meta.get("label", metric))
        verdicts = []
        levels = [(chance.get(k) or {}).get(metric, {}).get("mean") for k in chance_kinds]
        levels = [x for x in levels if x is not None]
        if stats.get("ci_low") is not None and levels:
            higher = meta.get("higher_is_better", True)
            above = stats["ci_low"] > max(levels) if higher else stats["ci_high"] < min(levels)
            verdicts.append('<span class="above">&#10003; beats chance</span>' if above
                            else '<span class="below">not above chance</span>')
        onset_gain = (gain.get("onset_mean") or {}).get(metric)
        if onset_gain and onset_gain.get("mean") is not None:
            verdicts.append('<span class="above">&#10003; beats the no-neural baseline</span>' if onset_gain.get("above")
                            else '<span class="below">not above the no-neural baseline</span>')
        rows.append(
            f'<tr><td class="name" title="{html.escape(meta.get("description", ""))}">{label}</td>'
            + _cell(result["metrics"], metric, "decoded", "dec")
            + "".join(_cell(chance.get(k), metric, f"chance_{k}") for k in chance_kinds)
            + "".join(_cell(baselines.get(k), metric, f"baseline_{k}") for k in base_kinds)
            + "".join(_gain_cell(gain.get(k), metric, f"gain_{k}") for k in base_kinds)
            + (_cell(ceiling, metric, "ceiling", "ceil") if ceiling else "")
            + f'<td class="v">{stats.get("n", "")}</td><td>{"<br>".join(verdicts)}</td></tr>'
        )
    return f"<table class=\"metrics\"><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


def word_table(result: dict[str, Any], metrics: tuple[str, ...] = ("pcc", "pcc_tilt", "stoi")) -> str:
    """Seen vs unseen words: decoded, onset-aligned baseline and gain for a few metrics."""
    groups = result.get("by_word") or {}
    if not groups:
        return "<p class=\"note\">These test windows belong to no word (continuous SWPD tiles): no seen/unseen split.</p>"
    info = result.get("metric_info", {})
    head = ("<tr><th>test words</th><th>trials</th>" + "".join(
        f"<th>{html.escape(info.get(m, {}).get('label', m))}</th><th>no-neural</th><th>gain</th>" for m in metrics)
        + "</tr>")
    rows = []
    for group in ("seen", "unseen"):
        g = groups.get(group) or {"n_trials": 0}
        label = "seen in training" if group == "seen" else "unseen in training"
        if g["n_trials"] < 2:
            rows.append(f"<tr><td class=\"name\">{label}</td><td class=\"v\">{g['n_trials']}</td>"
                        f"<td colspan=\"{3 * len(metrics)}\" class=\"desc\">too few trials to score (this split "
                        f"{'tests no word that training saw' if group == 'seen' else 'tests only words that training saw; use cv --split lowo'})</td></tr>")
            continue
        cells = "".join(_cell(g.get("metrics"), m, f"{group}_decoded", "dec")
                        + _cell((g.get("baselines") or {}).get("onset_mean"), m, f"{group}_baseline")
                        + _gain_cell((g.get("gain") or {}).get("onset_mean"), m, f"{group}_gain") for m in metrics)
        rows.append(f"<tr><td class=\"name\">{label}</td><td class=\"v\">{g['n_trials']}</td>{cells}</tr>")
    return f"<table class=\"words\"><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


METRIC_LABELS = {"pcc": {"label": "PCC (per trial)"}, "pcc_tilt": {"label": "PCC, tilt removed"},
                 "stoi": {"label": "STOI"}}
METRICS_NOTE = (
    "Mean &plusmn; SEM over test trials, 95% percentile-bootstrap CI over trials. <b>Chance</b>: the same trained "
    "decoder fed trial-shuffled neural windows (a derangement) or the neural series circularly shifted by &ge;10% of "
    "its length (SWPD control). <b>No-neural baselines</b> never see the brain and are scored exactly like the "
    "decoder (audio by Griffin-Lim): the constant mean speech spectrum of the training trials, and the onset-aligned "
    "mean of the training windows placed at each trial's onset (it is handed the trial timing, which a decoder must "
    "find in the brain). <b>Gain</b>: the decoder's per-trial score minus the baseline's on the same trials (MCD: "
    "baseline minus decoder), with a paired-bootstrap 95% CI and a Wilcoxon signed-rank p; only a gain whose CI "
    "lies above 0 over the onset-aligned mean shows content decoded from the brain. <b>PCC (per trial)</b> of dB "
    "mel is dominated by the spectral tilt of speech (the constant spectrum scores high on it); <b>PCC, tilt "
    "removed</b> subtracts each mel bin's training mean first, so only trial-specific structure counts; "
    "<b>PCC (per mel bin)</b> is the SWPD convention over concatenated frames. STOI metrics are computed on each "
    "trial window; windows with under 384 ms of speech are excluded (n).")


def asr_section(result: dict[str, Any], fig_dir: Path) -> str:
    """The word recogniser's verdicts: decoded against chance (1 / V and trial-shuffled), the no-neural baseline
    and the ceilings (reference audio; the speech model's resynthesis), and a confusion matrix; or why the
    metric does not apply to this recording."""
    a = result.get("asr") or {}
    if not a.get("applies"):
        return f"<p class=\"warn\">ASR word accuracy: {html.escape(str(a.get('note', 'not computed')))}.</p>"
    metrics = result.get("metrics") or {}
    rows = [("decoded", metrics), ("chance: 1 / vocabulary size", None),
            ("chance: trial-shuffled neural input", ((result.get("chance") or {}).get("shuffled"))),
            ("no-neural: onset-aligned mean", (result.get("baselines") or {}).get("onset_mean")),
            ("ceiling: reference audio", a.get("reference")), ("ceiling: speech-model resynthesis", a.get("resynthesis"))]
    body = []
    for name, stats in rows:
        if name.startswith("chance: 1 /"):
            body.append(f"<tr><td class=\"name\">{name}</td><td class=\"v\">{_fmt(a.get('chance_uniform'))}</td>"
                        f"<td class=\"v\">{_fmt(a.get('chance_uniform_top_k'))}</td></tr>")
        elif stats and "asr_word" in stats:
            body.append(f"<tr><td class=\"name\">{name}</td>" + _cell(stats, "asr_word", "asr", "dec" if name == "decoded" else "")
                        + _cell(stats, "asr_top3", "asr_top3") + "</tr>")
    html_parts = [f"<p class=\"sub\">{html.escape(str(a.get('recognizer', '')))}; vocabulary of "
                  f"{a.get('vocabulary_size')} words (the recording's word list)</p>",
                  "<table class=\"metrics\"><thead><tr><th>audio</th><th>word accuracy (top 1)</th>"
                  f"<th>top-{a.get('top_k', 3)} accuracy</th></tr></thead><tbody>{''.join(body)}</tbody></table>"]
    confusion = a.get("confusion") or {}
    figs = []
    for key, title in (("decoded", "decoded audio"), ("reference", "reference audio")):
        if confusion.get(key) is not None:
            fig = figures.confusion_matrix(fig_dir / f"confusion_{key}.png", np.asarray(confusion[key]),
                                           list(confusion["words"]), f"recognised words: {title}")
            figs.append(f"<figure><img src=\"figures/{fig.name}\" alt=\"confusion matrix, {title}\"></figure>")
    if figs:
        html_parts.append("<div class=\"figs\">" + "".join(figs) + "</div>")
    html_parts.append("<p class=\"note\">Each test trial's audio is recognised by a closed-vocabulary recogniser "
                      "that must choose one word of the recording's word list; chance is 1 / vocabulary size, and the "
                      "same recogniser on the trial-shuffled decoder's audio and on the no-neural baseline's audio gives "
                      "the controls. The reference audio's accuracy is the recogniser's own ceiling: a decoder cannot "
                      "be understood better than the real speech.</p>")
    return "\n".join(html_parts)


def write_report(out_dir: str | Path, result: dict[str, Any], test: Any, decoded: dict[str, np.ndarray], *,
                 logs_dir: str | Path | None = None, ceiling_decoded: dict[str, np.ndarray] | None = None,
                 max_trial_figures: int = MAX_TRIAL_FIGURES) -> Path:
    """Write report.html and figures/ into `out_dir` (which already holds metrics.json and audio/).

    Parameters
    ----------
    result : dict
        The metrics.json content (see `neurovox.evaluate.evaluate_test_set`).
    test : neurovox.evaluate.chance.TestSet
        References (mel_db, audio, speech_mask, f0_hz, formants_hz).
    decoded : dict
        ``mel_db`` (n_trials, n_frames, n_mels), optional ``params`` (n_trials, n_frames, 18).
    logs_dir : path, optional
        TensorBoard logs (or a folder with metrics.csv) of the training run.
    ceiling_decoded : dict, optional
        Speech-autoencoder resynthesis (``mel_db``) shown as a third panel.
    max_trial_figures : int
        Trials that get spectrogram (and parameter) figures; all trials get audio links.
    """
    out_dir = Path(out_dir)
    fig_dir = out_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    n_show = min(max_trial_figures, test.n_trials)
    per_trial = (result.get("per_trial") or {}).get("decoded", {})
    trials_meta = result.get("trials") or []

    body = [f"<h1>{html.escape(result.get('title', 'neurovox evaluation'))}</h1>",
            f"<p class=\"sub\">{result.get('n_trials')} held-out test trials &middot; created {html.escape(str(result.get('created', '')))}</p>"]
    data = result.get("data") or {}
    meta_rows = [("run", (result.get("run") or {}).get("path")), ("run kind", (result.get("run") or {}).get("kind")),
                 ("data", data.get("path")), ("data sha256", data.get("sha256")),
                 ("neurovox", f"{result.get('neurovox_version')} ({result.get('git_hash')})"),
                 ("seed", result.get("seed")), ("speech run (ceiling)", result.get("speech_run"))]
    body.append("<dl class=\"meta\">" + "".join(
        f"<dt>{html.escape(k)}</dt><dd>{html.escape(str(v))}</dd>" for k, v in meta_rows if v is not None) + "</dl>")
    if data and not data.get("matches_training_data", True):
        body.append("<p class=\"warn\">This file is not the one the run was trained on (--allow-other-data): "
                    "test trials may overlap training data.</p>")

    body.append("<h2>Metrics</h2>")
    body.append(metric_table(result))
    body.append(f"<p class=\"note\">{METRICS_NOTE} <b>Ceiling</b>: {html.escape(str(result.get('ceiling_note', '')))}.</p>")
    body.append("<h2>Intelligibility: word recognition</h2>")
    body.append(asr_section(result, fig_dir))
    if result.get("synthesis") == "formant":
        from neurovox.synth.formant import LOOKAHEAD_MS, SPEC_LOOKAHEAD_MS

        causal = bool(((result.get("config") or {}).get("decoder") or {}).get("causal"))
        body.append(f"<p class=\"note\"><b>Synthesis look-ahead</b>: the formant synthesizer renders frame t's "
                    f"parameters into the audio from {LOOKAHEAD_MS:g} ms before frame t (and into its spectrogram from "
                    f"{SPEC_LOOKAHEAD_MS:g} ms before), so "
                    + ("this strictly causal decoder's audio can stream out " + f"{LOOKAHEAD_MS:g} ms after its parameters."
                       if causal else "a streaming renderer has to wait that long.") + "</p>")
    body.append("<h2>Seen and unseen words</h2>")
    body.append(word_table(result))

    curves = figures.training_curves(fig_dir / "training_curves.png", figures.read_training_scalars(logs_dir))
    body.append("<h2>Training curves</h2>")
    body.append(f"<figure><img src=\"figures/{curves.name}\" alt=\"training curves\"></figure>" if curves
                else "<p class=\"note\">No training logs found for this run.</p>")

    body.append("<h2>Test trials</h2>")
    if n_show < test.n_trials:
        body.append(f"<p class=\"note\">Spectrograms of the first {n_show} of {test.n_trials} trials; every trial's "
                    "audio is in audio/ and its metrics in metrics.json.</p>")
    vmax = float(np.percentile(test.mel_db, 99.5))
    metric_names = [m for m in ("pcc", "pcc_tilt", "stoi", "estoi", "stoi_plus", "mcd_db", "asr_word") if m in per_trial]
    body.append(_trial_table(trials_meta, per_trial, metric_names, result.get("metric_info", {}), n_show))
    params = decoded.get("params")
    for i in range(n_show):
        label = test.labels[i] if i < len(test.labels) else str(i)
        panels = [("reference", np.asarray(test.mel_db[i])), ("decoded", np.asarray(decoded["mel_db"][i]))]
        if ceiling_decoded is not None:
            panels.append(("resynthesis (ceiling)", np.asarray(ceiling_decoded["mel_db"][i])))
        if "onset_mean" in test.baselines:
            panels.append(("no-neural: onset-aligned mean", np.asarray(test.baselines["onset_mean"][i])))
        spec = figures.spectrogram_comparison(fig_dir / f"trial{i:03d}_spectrogram.png", panels,
                                              np.asarray(test.speech_mask[i]), f"trial {i}: \u201c{label}\u201d",
                                              vmax=vmax)
        row = trials_meta[i] if i < len(trials_meta) else {}
        scores = " &middot; ".join(f"{html.escape(result.get('metric_info', {}).get(m, {}).get('label', m))} "
                                   f"{_fmt(per_trial[m][i])}" for m in metric_names)
        block = [f"<div class=\"trial\" id=\"trial{i}\"><h3>Trial {i} &mdash; &ldquo;{html.escape(str(label))}&rdquo;</h3>",
                 f"<p class=\"note\">{scores}</p>",
                 f"<figure><img src=\"figures/{spec.name}\" alt=\"spectrograms trial {i}\"></figure>",
                 "<div class=\"players\">"]
        for kind in ("reference", "decoded", "resynthesis", "onset_mean"):
            if row.get(f"wav_{kind}"):
                block.append(f"<div><label>{'no-neural baseline' if kind == 'onset_mean' else kind}</label><audio controls preload=\"none\" "
                             f"src=\"{html.escape(row[f'wav_{kind}'])}\"></audio></div>")
        block.append("</div>")
        if params is not None:
            traj = figures.parameter_trajectories(
                fig_dir / f"trial{i:03d}_params.png", np.asarray(params[i]),
                None if test.f0_hz is None else np.asarray(test.f0_hz[i]),
                None if test.formants_hz is None else np.asarray(test.formants_hz[i]),
                np.asarray(test.speech_mask[i]), "decoded vs reference parameters")
            block.append(f"<figure><img src=\"figures/{traj.name}\" alt=\"parameter trajectories trial {i}\"></figure>")
        block.append("</div>")
        body.append("\n".join(block))
    path = out_dir / "report.html"
    write_text_atomic(path, html_page(result.get("title", "neurovox evaluation"), "\n".join(body)))
    return path


def _trial_table(trials_meta: list[dict[str, Any]], per_trial: dict[str, Any], metric_names: list[str],
                 info: dict[str, Any], n_show: int) -> str:
    head = "<tr><th>#</th><th>word</th>" + "".join(
        f"<th>{html.escape(info.get(m, {}).get('label', m))}</th>" for m in metric_names) + (
        "<th>recognised (best first)</th>" if any("asr_decoded" in r for r in trials_meta) else "") + "<th>audio</th></tr>"
    rows = []
    for i, row in enumerate(trials_meta):
        links = " ".join(f"<a href=\"{html.escape(row[k])}\">{k[4:]}</a>" for k in
                         ("wav_reference", "wav_decoded", "wav_resynthesis", "wav_onset_mean") if row.get(k))
        cells = "".join(f"<td class=\"v\">{_fmt(per_trial[m][i])}</td>" for m in metric_names)
        if any("asr_decoded" in r for r in trials_meta):
            cells += f"<td>{html.escape(', '.join(row.get('asr_decoded') or []) or '(nothing)')}</td>"
        anchor = f"<a href=\"#trial{i}\">{i}</a>" if i < n_show else str(i)
        rows.append(f"<tr><td>{anchor}</td><td>{html.escape(str(row.get('label', '')))}</td>{cells}<td>{links}</td></tr>")
    return f"<table class=\"trials\"><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


def write_comparison_report(entries: list[dict[str, Any]], out_dir: str | Path,
                            title: str = "neurovox: model comparison", notes: str = "") -> Path:
    """One page comparing several runs or models.

    Parameters
    ----------
    entries : list of dict
        Each with ``name``; ``metrics`` {metric: {mean, sem, ...}}; optional ``chance``
        {"shuffled"|"circular_shift": {metric: {mean, ...}}}, ``baselines`` {"onset_mean"|...: {metric: ...}},
        ``gain`` {"onset_mean"|...: {metric: paired_gain}}, ``by_word`` (as metrics.json),
        ``ceiling`` {metric: {mean, ...}} (only where it bounds the decoder), ``report`` (path of the
        entry's own report.html), ``n_folds``, ``description``.
    out_dir : path
        Folder for report.html and figures/ (links to entry reports are made relative to it).
    """
    out_dir = Path(out_dir)
    fig_dir = out_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    metric_order = ("pcc", "pcc_tilt", "pcc_per_bin", "stoi", "estoi", "stoi_plus", "mcd_db", "asr_word")
    metrics = [m for m in metric_order if any(m in (e.get("metrics") or {}) for e in entries)]
    labels = {"pcc": "PCC (per trial)", "pcc_tilt": "PCC, tilt removed", "pcc_per_bin": "PCC (per bin)",
              "stoi": "STOI", "estoi": "ESTOI", "stoi_plus": "STOI+", "mcd_db": "MCD (dB)",
              "asr_word": "ASR word accuracy"}
    body = [f"<h1>{html.escape(title)}</h1>",
            f"<p class=\"sub\">{len(entries)} model{'s' if len(entries) != 1 else ''} &middot; each cell: decoded mean "
            "&plusmn; SEM; beneath it the trial-shuffled chance, the no-neural baseline (onset-aligned mean of the "
            "training windows), the decoder's paired gain over that baseline with its 95% CI, and the formant "
            "resynthesis ceiling where it bounds the decoder</p>"]
    if notes:
        body.append(f"<p class=\"note\">{html.escape(notes)}</p>")
    head = "<tr><th>model</th>" + "".join(f"<th>{labels.get(m, m)}</th>" for m in metrics) + "<th>details</th></tr>"
    rows = []
    for e in entries:
        cells = []
        for m in metrics:
            s = (e.get("metrics") or {}).get(m)
            if not s:
                cells.append(f'<td data-metric="{m}" data-kind="decoded">&ndash;</td>')
                continue
            ch = ((e.get("chance") or {}).get("shuffled") or {}).get(m, {}).get("mean")
            base = ((e.get("baselines") or {}).get("onset_mean") or {}).get(m, {}).get("mean")
            g = ((e.get("gain") or {}).get("onset_mean") or {}).get(m)
            ce = (e.get("ceiling") or {}).get(m, {}).get("mean")
            value_attr = "" if s.get("mean") is None else f' data-value="{float(s["mean"])!r}"'
            lines = [f"chance {_fmt(ch)} &middot; no-neural {_fmt(base)}"]
            if g and g.get("mean") is not None:
                tag = ('<span class="above">gain CI above 0</span>' if g.get("above")
                       else '<span class="below">gain CI below 0</span>'
                       if (g.get("ci_high") is not None and g["ci_high"] < 0)
                       else '<span class="below">gain CI includes 0</span>')
                lines.append(f"gain {'+' if g['mean'] >= 0 else ''}{_fmt(g['mean'])} "
                             f"[{_fmt(g.get('ci_low'))}, {_fmt(g.get('ci_high'))}] {tag}")
            if ce is not None:
                lines.append(f"ceiling {_fmt(ce)}")
            cells.append(f'<td class="v" data-metric="{m}" data-kind="decoded"{value_attr}>'
                         f'<span class="dec">{_fmt(s.get("mean"))}</span> &plusmn; {_fmt(s.get("sem"))}'
                         + "".join(f'<span class="ci">{line}</span>' for line in lines) + "</td>")
        link = ""
        if e.get("report"):
            rel = os.path.relpath(Path(e["report"]).resolve(), out_dir.resolve())
            link = f"<a href=\"{html.escape(rel)}\">report</a>"
        n = f" <span class=\"ci\">{e['n_folds']} folds</span>" if e.get("n_folds") else ""
        rows.append(f"<tr><td class=\"name\">{html.escape(e['name'])}{n}</td>{''.join(cells)}<td>{link}</td></tr>")
    body.append(f"<table class=\"metrics\"><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>")
    body.append(f"<p class=\"note\">{METRICS_NOTE}</p>")
    if any(e.get("by_word") for e in entries):
        body.append("<h2>Seen and unseen words</h2>")
        for e in entries:
            if e.get("by_word"):
                body.append(f"<h3>{html.escape(e['name'])}</h3>" + word_table({"by_word": e["by_word"],
                                                                               "metric_info": METRIC_LABELS}))
    figs = []
    for m in ("pcc", "pcc_tilt", "stoi", "asr_word"):
        fig = figures.comparison_bars(fig_dir / f"compare_{m}.png", entries, m, labels[m])
        if fig is not None:
            figs.append(f"<figure><img src=\"figures/{fig.name}\" alt=\"{m} by model\"></figure>")
    if figs:
        body.append("<div class=\"figs\">" + "".join(figs) + "</div>")
    path = out_dir / "report.html"
    write_text_atomic(path, html_page(title, "\n".join(body)))
    return path
