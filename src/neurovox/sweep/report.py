"""The aggregated report of a sweep (`neurovox.sweep`): OUT/summary.csv, OUT/sweep.png, OUT/report.html.

Per participant: each decoder's folds aggregated as `neurovox cv` does (mean and SE across folds of each
fold's mean, gains over the no-neural baseline pooled over the folds' test trials). Across participants: the
mean and SE of the participants' means (every participant one point), beside the mean chance level and no-neural
baseline. Paired comparisons across participants: two decoders of the same split on the participants that both
finished (the difference of participant means, its SE, and the Wilcoxon signed-rank p, which needs >= 6
participants to reach p < 0.05 two-sided) - between models of the same direction, and causal vs non-causal of the
same model.
"""

from __future__ import annotations

import csv
import html
import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np

from neurovox.utils.files import atomic_path, write_text_atomic

METRICS = ("pcc_tilt", "pcc", "stoi")  # shown in the figure and the comparisons (every metric goes to the CSV)
LOWER_IS_BETTER = {"mcd_db"}  # a gain is always "better by": baseline - decoded for these
METRIC_NAMES = {"pcc": "PCC", "pcc_tilt": "PCC tilt-removed", "stoi": "STOI", "estoi": "ESTOI",
                "stoi_plus": "STOI+", "mcd_db": "MCD (dB)", "asr_word": "ASR word acc.", "asr_top3": "ASR top-3"}


def _mean(stats: dict[str, Any] | None, metric: str) -> float:
    v = ((stats or {}).get(metric) or {}).get("mean")
    return float("nan") if v is None else float(v)


def aggregate(out: Path, cells: list[Any]) -> dict[str, Any]:
    """{"participants": {(split, decoder): {participant: cv aggregate}}, "across": ..., "comparisons": [...]}."""
    from neurovox.cv import aggregate_folds

    folds: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for c in cells:
        done = out / "cells" / c.key / "DONE"
        if done.exists():
            folds.setdefault((c.split, c.decoder, c.participant), []).append(json.loads(done.read_text()))
    per: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for (split, decoder, participant), fs in sorted(folds.items()):
        per.setdefault((split, decoder), {})[participant] = aggregate_folds(fs)
    metrics = sorted({m for agg in per.values() for a in agg.values() for m in (a.get("metrics") or {})
                      if m != "pcc_per_bin"}, key=lambda m: (m not in METRICS, METRICS.index(m) if m in METRICS else 0, m))
    across = {}
    for key, agg in per.items():
        across[key] = {}
        for m in metrics:
            vals = np.array([_mean(a.get("metrics"), m) for a in agg.values()])
            chance = np.array([_mean(((a.get("chance") or {}).get("shuffled")), m) for a in agg.values()])
            base = np.array([_mean(((a.get("baselines") or {}).get("onset_mean")), m) for a in agg.values()])
            across[key][m] = {"mean": _nanmean(vals), "se": _se(vals), "n": int(np.isfinite(vals).sum()),
                              "per_participant": dict(zip(agg, vals.tolist())),
                              "chance": _nanmean(chance), "no_neural": _nanmean(base)}
    return {"participants": per, "across": across, "metrics": metrics, "comparisons": comparisons(across)}


def comparisons(across: dict[tuple[str, str], dict[str, Any]]) -> list[dict[str, Any]]:
    """Paired differences across participants: models of one direction, and each model causal vs not."""
    from scipy.stats import wilcoxon

    rows = []
    for (sa, a), (sb, b) in itertools.combinations(sorted(across), 2):
        same_direction = a.endswith("-causal") == b.endswith("-causal")
        causal_pair = a.removesuffix("-causal") == b.removesuffix("-causal")
        if sa != sb or not (same_direction or causal_pair):
            continue
        for m in METRICS:
            if m not in across[(sa, a)]:
                continue
            pa, pb = across[(sa, a)][m]["per_participant"], across[(sb, b)][m]["per_participant"]
            both = [p for p in pa if p in pb and np.isfinite(pa[p]) and np.isfinite(pb[p])]
            d = np.array([pa[p] - pb[p] for p in both])
            p_value = float(wilcoxon(d).pvalue) if len(d) >= 2 and np.any(d != 0) else float("nan")
            rows.append({"split": sa, "a": a, "b": b, "metric": m, "n_participants": len(d),
                         "mean_diff": _nanmean(d), "se": _se(d), "p_wilcoxon": p_value,
                         "a_better_in": int((d > 0).sum())})
    return rows


def write_sweep_report(out: Path, cells: list[Any], state: dict[str, Any]) -> dict[str, Any]:
    """Write summary.csv, sweep.png and report.html for the finished cells; returns the aggregate."""
    agg = aggregate(out, cells)
    _write_csv(out / "summary.csv", agg)
    has_figure = _figure(out / "sweep.png", agg)
    body = [f"<h1>neurovox sweep</h1><p>{len(cells)} cells: {_state_counts(state)}. "
            f"{len({c.participant for c in cells})} participants; every metric is the test trials' mean per fold, "
            "averaged over folds per participant, then over participants (mean &plusmn; SE, n = participants). "
            "Chance: the same decoder fed trial-shuffled neural windows; no-neural: the onset-aligned mean training "
            "spectrogram, scored like a decoder.</p>"]
    if has_figure:
        body.append('<img src="sweep.png" alt="decoders across participants">')
    body.append(_across_table(agg))
    body.append(_comparison_table(agg["comparisons"]))
    body.append(_participant_table(agg, out))
    failed = {k: v for k, v in state["cells"].items() if v.get("state") != "done"}
    if failed:
        body.append("<h2>Cells not finished</h2><ul>" + "".join(
            f"<li>{html.escape(k)}: {html.escape(v.get('state', ''))} {html.escape(v.get('error', '') or '')} "
            f"(log: {html.escape(v.get('log', '-') or '-')})</li>" for k, v in failed.items()) + "</ul>"
            "<p>Rerun the same `neurovox sweep` command: finished cells are kept, the others resume.</p>")
    from neurovox.report.html import html_page

    write_text_atomic(out / "report.html", html_page("neurovox sweep", "\n".join(body)))
    return {"n_cells": len(cells), "n_done": len(cells) - len(failed),
            "across": {f"{s}/{d}": v for (s, d), v in agg["across"].items()}, "comparisons": agg["comparisons"]}


# Tables, CSV, figure ----------------------------------------------------------------------------------

def _write_csv(path: Path, agg: dict[str, Any]) -> None:
    """One row per (participant or "all", split, decoder, metric)."""
    cols = ["participant", "split", "decoder", "metric", "n", "mean", "se", "chance", "no_neural",
            "gain_vs_no_neural", "gain_ci_low", "gain_ci_high"]
    rows = []
    for (split, decoder), parts in agg["participants"].items():
        for participant, a in parts.items():
            for m in agg["metrics"]:
                s = (a.get("metrics") or {}).get(m) or {}
                g = ((a.get("gain") or {}).get("onset_mean") or {}).get(m) or {}
                rows.append([participant, split, decoder, m, s.get("n_folds"), s.get("mean"), s.get("sem"),
                             _mean((a.get("chance") or {}).get("shuffled"), m),
                             _mean((a.get("baselines") or {}).get("onset_mean"), m),
                             g.get("mean"), g.get("ci_low"), g.get("ci_high")])
        for m, s in agg["across"][(split, decoder)].items():
            gain = s["no_neural"] - s["mean"] if m in LOWER_IS_BETTER else s["mean"] - s["no_neural"]
            rows.append(["all", split, decoder, m, s["n"], s["mean"], s["se"], s["chance"], s["no_neural"], gain,
                         None, None])  # across participants: no CI from a handful of points; see the comparisons
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        w.writerows([[_csv(x) for x in r] for r in rows])


def _figure(path: Path, agg: dict[str, Any]) -> bool:
    """Per metric: each decoder's participants as points joined across decoders, mean +- SE, chance, no-neural."""
    from neurovox.report.figures import pyplot

    metrics = [m for m in METRICS if m in agg["metrics"]]
    if not agg["across"] or not metrics:
        return False
    plt = pyplot()
    keys = sorted(agg["across"])
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.8), squeeze=False)
    participants = sorted({p for k in keys for p in agg["participants"][k]})
    for ax, m in zip(axes[0], metrics):
        x = np.arange(len(keys))
        for j, p in enumerate(participants):
            y = [agg["across"][k][m]["per_participant"].get(p, np.nan) for k in keys]
            ax.plot(x, y, "o-", color=f"C{j % 10}", alpha=0.5, ms=4, lw=0.8, label=p if len(participants) <= 10 else None)
        mean = [agg["across"][k][m]["mean"] for k in keys]
        se = [agg["across"][k][m]["se"] for k in keys]
        ax.errorbar(x, mean, yerr=np.nan_to_num(se), fmt="s", color="k", capsize=4, label="mean +- SE")
        ax.plot(x, [agg["across"][k][m]["chance"] for k in keys], "_", color="grey", ms=18, mew=2, label="chance")
        ax.plot(x, [agg["across"][k][m]["no_neural"] for k in keys], "x", color="C3", ms=8, label="no-neural")
        ax.set_xticks(x, [f"{d}\n{s}" if len({k[0] for k in keys}) > 1 else d for s, d in keys], rotation=30,
                      ha="right", fontsize=8)
        ax.set_xlim(-0.5, len(keys) - 0.5)
        ax.set_title(METRIC_NAMES.get(m, m))
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return True


def _across_table(agg: dict[str, Any]) -> str:
    head = "".join(f"<th>{METRIC_NAMES.get(m, m)}</th>" for m in agg["metrics"])
    rows = []
    for (split, decoder), stats in sorted(agg["across"].items()):
        cells = "".join(f"<td>{_f(s['mean'])} &plusmn; {_f(s['se'])}<br><small>chance {_f(s['chance'])}, "
                        f"no-neural {_f(s['no_neural'])}, n={s['n']}</small></td>" for s in stats.values())
        rows.append(f"<tr><td>{html.escape(decoder)}</td><td>{html.escape(split)}</td>{cells}</tr>")
    return (f"<h2>Across participants</h2><table><tr><th>decoder</th><th>split</th>{head}</tr>{''.join(rows)}"
            "</table>")


def _comparison_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<h2>Paired comparisons</h2><p>None: the grid has one decoder per split.</p>"
    body = "".join(
        f"<tr><td>{html.escape(r['a'])} &minus; {html.escape(r['b'])}</td><td>{html.escape(r['split'])}</td>"
        f"<td>{METRIC_NAMES.get(r['metric'], r['metric'])}</td><td>{_f(r['mean_diff'], '+.3f')} &plusmn; {_f(r['se'])}</td>"
        f"<td>{r['a_better_in']} / {r['n_participants']}</td><td>{_f(r['p_wilcoxon'], '.3g')}</td></tr>" for r in rows)
    return ("<h2>Paired comparisons across participants</h2><p>Difference of participant means (mean &plusmn; SE), "
            "the participants where the first is better, and the Wilcoxon signed-rank p (two-sided).</p><table><tr>"
            "<th>decoders</th><th>split</th><th>metric</th><th>difference</th><th>first better in</th><th>p</th></tr>"
            f"{body}</table>")


def _participant_table(agg: dict[str, Any], out: Path) -> str:
    rows = []
    for (split, decoder), parts in sorted(agg["participants"].items()):
        for participant, a in parts.items():
            cells = []
            for m in METRICS:
                s = (a.get("metrics") or {}).get(m)
                g = ((a.get("gain") or {}).get("onset_mean") or {}).get(m) or {}
                gain = (f"<br><small>gain {_f(g.get('mean'), '+.3f')} [{_f(g.get('ci_low'), '+.3f')}, "
                        f"{_f(g.get('ci_high'), '+.3f')}]</small>") if g else ""
                cells.append(f"<td>{_f((s or {}).get('mean'))} &plusmn; {_f((s or {}).get('sem'))}{gain}</td>")
            link = _cell_report(out, participant, decoder, split)
            rows.append(f"<tr><td>{html.escape(participant)}</td><td>{html.escape(decoder)}</td>"
                        f"<td>{html.escape(split)}</td><td>{(a.get('metrics') or {}).get('pcc', {}).get('n_folds', '')}"
                        f"</td>{''.join(cells)}<td>{link}</td></tr>")
    head = "".join(f"<th>{METRIC_NAMES[m]}</th>" for m in METRICS)
    return ("<h2>Per participant</h2><p>Mean &plusmn; SE across folds; gain over the no-neural baseline pooled over "
            "the folds' test trials (paired bootstrap 95% CI).</p><table><tr><th>participant</th><th>decoder</th>"
            f"<th>split</th><th>folds</th>{head}<th>first fold</th></tr>{''.join(rows)}</table>")


def _cell_report(out: Path, participant: str, decoder: str, split: str) -> str:
    reports = sorted((out / "cells" / participant / decoder).glob(f"{split}-fold*/eval/report.html"))
    if not reports:
        return ""
    rel = reports[0].relative_to(out).as_posix()
    return f'<a href="{html.escape(rel)}">report</a>'


def _state_counts(state: dict[str, Any]) -> str:
    counts: dict[str, int] = {}
    for v in state["cells"].values():
        counts[v.get("state", "pending")] = counts.get(v.get("state", "pending"), 0) + 1
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))


def _nanmean(v: np.ndarray) -> float:
    v = np.asarray(v, float)
    return float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")


def _se(v: np.ndarray) -> float:
    v = np.asarray(v, float)
    v = v[np.isfinite(v)]
    return float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) >= 2 else float("nan")


def _f(x: Any, spec: str = ".3f") -> str:
    return "&ndash;" if x is None or not np.isfinite(float(x)) else format(float(x), spec)


def _csv(x: Any) -> Any:
    if isinstance(x, float):
        return "" if not np.isfinite(x) else f"{x:.6g}"
    return "" if x is None else x
