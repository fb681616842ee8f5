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


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head>\n<body><main>\n{body}\n</main></body></html>\n")


def metric_table(result: dict[str, Any]) -> str:
    """Decoded, chance (shuffled, circular shift) and ceiling for every metric."""
    info = result.get("metric_info", {})
    chance = result.get("chance") or {}
    ceiling = result.get("ceiling")
    chance_kinds = [k for k in ("shuffled", "circular_shift") if k in chance]
    head = ("<tr><th>metric</th><th>decoded</th>" +
            "".join(f"<th>chance: {k.replace('_', ' ')}</th>" for k in chance_kinds) +
            "<th>ceiling (resynthesis)</th><th>n</th><th></th></tr>")
    rows = []
    for metric, stats in result["metrics"].items():
        meta = info.get(metric, {})
        label = html.escape(meta.get("label", metric))
        verdict = ""
        levels = [(chance.get(k) or {}).get(metric, {}).get("mean") for k in chance_kinds]
        levels = [x for x in levels if x is not None]
        if stats.get("ci_low") is not None and levels:
            higher = meta.get("higher_is_better", True)
            above = stats["ci_low"] > max(levels) if higher else stats["ci_high"] < min(levels)
            verdict = ('<span class="above">&#10003; beats chance</span>' if above
                       else '<span class="below">not above chance</span>')
        rows.append(
            f'<tr><td class="name" title="{html.escape(meta.get("description", ""))}">{label}</td>'
            + _cell(result["metrics"], metric, "decoded", "dec")
            + "".join(_cell(chance.get(k), metric, f"chance_{k}") for k in chance_kinds)
            + _cell(ceiling, metric, "ceiling", "ceil")
            + f'<td class="v">{stats.get("n", "")}</td><td>{verdict}</td></tr>'
        )
    return f"<table class=\"metrics\"><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


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
    body.append("<p class=\"note\">Mean &plusmn; SEM over test trials, 95% percentile-bootstrap CI over trials. "
                "Chance: the same trained decoder fed trial-shuffled neural windows (a derangement) or the "
                "neural series circularly shifted by &ge;10% of its length (SWPD control). Ceiling: "
                f"{html.escape(str(result.get('ceiling_note', '')))}. STOI metrics are computed on each "
                "trial window; windows with under 384 ms of speech are excluded (n).</p>")

    curves = figures.training_curves(fig_dir / "training_curves.png", figures.read_training_scalars(logs_dir))
    body.append("<h2>Training curves</h2>")
    body.append(f"<figure><img src=\"figures/{curves.name}\" alt=\"training curves\"></figure>" if curves
                else "<p class=\"note\">No training logs found for this run.</p>")

    body.append("<h2>Test trials</h2>")
    if n_show < test.n_trials:
        body.append(f"<p class=\"note\">Spectrograms of the first {n_show} of {test.n_trials} trials; every trial's "
                    "audio is in audio/ and its metrics in metrics.json.</p>")
    vmax = float(np.percentile(test.mel_db, 99.5))
    metric_names = [m for m in ("pcc", "stoi", "estoi", "stoi_plus", "mcd_db") if m in per_trial]
    body.append(_trial_table(trials_meta, per_trial, metric_names, result.get("metric_info", {}), n_show))
    params = decoded.get("params")
    for i in range(n_show):
        label = test.labels[i] if i < len(test.labels) else str(i)
        panels = [("reference", np.asarray(test.mel_db[i])), ("decoded", np.asarray(decoded["mel_db"][i]))]
        if ceiling_decoded is not None:
            panels.append(("resynthesis (ceiling)", np.asarray(ceiling_decoded["mel_db"][i])))
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
        for kind in ("reference", "decoded", "resynthesis"):
            if row.get(f"wav_{kind}"):
                block.append(f"<div><label>{kind}</label><audio controls preload=\"none\" "
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
    write_text_atomic(path, _page(result.get("title", "neurovox evaluation"), "\n".join(body)))
    return path


def _trial_table(trials_meta: list[dict[str, Any]], per_trial: dict[str, Any], metric_names: list[str],
                 info: dict[str, Any], n_show: int) -> str:
    head = "<tr><th>#</th><th>word</th>" + "".join(
        f"<th>{html.escape(info.get(m, {}).get('label', m))}</th>" for m in metric_names) + "<th>audio</th></tr>"
    rows = []
    for i, row in enumerate(trials_meta):
        links = " ".join(f"<a href=\"{html.escape(row[k])}\">{k[4:]}</a>" for k in
                         ("wav_reference", "wav_decoded", "wav_resynthesis") if row.get(k))
        cells = "".join(f"<td class=\"v\">{_fmt(per_trial[m][i])}</td>" for m in metric_names)
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
        {"shuffled"|"circular_shift": {metric: {mean, ...}}}, ``ceiling`` {metric: {mean, ...}},
        ``report`` (path of the entry's own report.html), ``n_folds``, ``description``.
    out_dir : path
        Folder for report.html and figures/ (links to entry reports are made relative to it).
    """
    out_dir = Path(out_dir)
    fig_dir = out_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    metric_order = ("pcc", "pcc_per_bin", "stoi", "estoi", "stoi_plus", "mcd_db")
    metrics = [m for m in metric_order if any(m in (e.get("metrics") or {}) for e in entries)]
    labels = {"pcc": "PCC (per trial)", "pcc_per_bin": "PCC (per bin)", "stoi": "STOI", "estoi": "ESTOI",
              "stoi_plus": "STOI+", "mcd_db": "MCD (dB)"}
    body = [f"<h1>{html.escape(title)}</h1>",
            f"<p class=\"sub\">{len(entries)} model{'s' if len(entries) != 1 else ''} &middot; each cell: decoded mean &plusmn; SEM, with the "
            "trial-shuffled chance level and the resynthesis ceiling beneath</p>"]
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
            ce = (e.get("ceiling") or {}).get(m, {}).get("mean")
            value_attr = "" if s.get("mean") is None else f' data-value="{float(s["mean"])!r}"'
            cells.append(f'<td class="v" data-metric="{m}" data-kind="decoded"{value_attr}>'
                         f'<span class="dec">{_fmt(s.get("mean"))}</span> &plusmn; {_fmt(s.get("sem"))}'
                         f'<span class="ci">chance {_fmt(ch)} &middot; ceiling {_fmt(ce)}</span></td>')
        link = ""
        if e.get("report"):
            rel = os.path.relpath(Path(e["report"]).resolve(), out_dir.resolve())
            link = f"<a href=\"{html.escape(rel)}\">report</a>"
        n = f" <span class=\"ci\">{e['n_folds']} folds</span>" if e.get("n_folds") else ""
        rows.append(f"<tr><td class=\"name\">{html.escape(e['name'])}{n}</td>{''.join(cells)}<td>{link}</td></tr>")
    body.append(f"<table class=\"metrics\"><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>")
    figs = []
    for m in ("pcc", "stoi"):
        fig = figures.comparison_bars(fig_dir / f"compare_{m}.png", entries, m, labels[m])
        if fig is not None:
            figs.append(f"<figure><img src=\"figures/{fig.name}\" alt=\"{m} by model\"></figure>")
    if figs:
        body.append("<div class=\"figs\">" + "".join(figs) + "</div>")
    path = out_dir / "report.html"
    write_text_atomic(path, _page(title, "\n".join(body)))
    return path
