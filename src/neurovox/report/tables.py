"""Text and markdown tables of several evaluations (the demo's printout, BENCHMARKS.md, cv).

One row per (decoder, metric): the decoded mean, its trial-shuffled chance, the no-neural baseline
(onset-aligned mean of the training windows), the paired gain over that baseline with its 95% CI
and whether the CI excludes 0, and the formant-resynthesis ceiling where it bounds the decoder.
A second table splits the same by whether the test word was seen in training.

    entries = [comparison_entry("linear", json.load(open("eval/linear/metrics.json")), "eval/linear/report.html")]
    print(text_table(entries))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

TABLE_METRICS = ("pcc", "pcc_tilt", "stoi", "asr_word")
LABELS = {"pcc": "PCC", "pcc_tilt": "PCC tilt-removed", "stoi": "STOI", "estoi": "ESTOI", "stoi_plus": "STOI+",
          "mcd_db": "MCD dB", "pcc_per_bin": "PCC per bin", "asr_word": "ASR word acc.", "asr_top3": "ASR top-3 acc."}


def comparison_entry(name: str, result: dict[str, Any], report: str | Path | None = None,
                     description: str = "", **extra: Any) -> dict[str, Any]:
    """An entry of `write_comparison_report` / `text_table` from one metrics.json content."""
    return {"name": name, "metrics": result["metrics"], "chance": result.get("chance"),
            "baselines": result.get("baselines"), "gain": result.get("gain"), "by_word": result.get("by_word"),
            "ceiling": ceiling_of(result), "report": str(Path(report).resolve()) if report else None,
            "description": description, **extra}


def ceiling_of(result: dict[str, Any]) -> dict[str, Any] | None:
    """The formant resynthesis ceiling where it bounds the decoder, and for the ASR accuracies the
    recogniser's accuracy on the reference audio (a decoder cannot be understood better than real speech)."""
    ceiling = dict(result.get("ceiling") or {})
    asr = result.get("asr") or {}
    if asr.get("applies") and asr.get("reference"):
        ceiling.update(asr["reference"])
    return ceiling or None


def _mean(stats: dict | None, metric: str) -> str:
    v = ((stats or {}).get(metric) or {}).get("mean")
    return "-" if v is None else f"{v:.3f}"


def _gain(gain: dict | None, metric: str) -> tuple[str, str]:
    g = (gain or {}).get(metric)
    if not g or g.get("mean") is None:
        return "-", "-"
    verdict = "yes" if g.get("above") else ("no (worse: CI below 0)" if g["ci_high"] < 0 else "no (CI includes 0)")
    return f"{g['mean']:+.3f} [{g['ci_low']:+.3f}, {g['ci_high']:+.3f}]", verdict


def table_rows(entries: list[dict[str, Any]], metrics: tuple[str, ...] = TABLE_METRICS) -> list[list[str]]:
    """Header + one row per (entry, metric): decoder, metric, decoded, chance, no-neural, gain [CI], beats it, ceiling."""
    rows = [["decoder", "metric", "decoded", "chance", "no-neural", "gain over no-neural [95% CI]",
             "beats no-neural", "ceiling"]]
    for e in entries:
        shuffled = (e.get("chance") or {}).get("shuffled")
        onset = (e.get("baselines") or {}).get("onset_mean")
        for k, m in enumerate(metrics):
            if m not in (e.get("metrics") or {}):
                continue
            gain, above = _gain((e.get("gain") or {}).get("onset_mean"), m)
            rows.append([e["name"] if k == 0 else "", LABELS.get(m, m), _mean(e["metrics"], m), _mean(shuffled, m),
                         _mean(onset, m), gain, above, _mean(e.get("ceiling"), m)])
    return rows


def word_rows(entries: list[dict[str, Any]], metric: str = "pcc_tilt") -> list[list[str]]:
    """Header + one row per (entry, seen/unseen group) for `metric`."""
    rows = [["decoder", "test words", "trials", f"{LABELS[metric]} decoded", "no-neural", "gain [95% CI]",
             "beats no-neural"]]
    for e in entries:
        for group in ("seen", "unseen"):
            g = (e.get("by_word") or {}).get(group)
            if g is None:
                continue
            if g["n_trials"] < 2:
                rows.append([e["name"], group, str(g["n_trials"]), "-", "-", "-", "-"])
                continue
            gain, above = _gain((g.get("gain") or {}).get("onset_mean"), metric)
            rows.append([e["name"], group, str(g["n_trials"]), _mean(g.get("metrics"), metric),
                         _mean((g.get("baselines") or {}).get("onset_mean"), metric), gain, above])
    return rows


def _text(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def _markdown(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows[1:]])


def text_table(entries: list[dict[str, Any]]) -> str:
    """Both tables as aligned plain text."""
    out = _text(table_rows(entries))
    words = word_rows(entries)
    return out + ("\n\nSeen / unseen test words:\n" + _text(words) if len(words) > 1 else "")


def markdown_table(entries: list[dict[str, Any]]) -> str:
    """Both tables as markdown."""
    out = _markdown(table_rows(entries))
    words = word_rows(entries)
    return out + ("\n\nSeen / unseen test words (tilt-removed PCC):\n\n" + _markdown(words) if len(words) > 1 else "")
