"""HTML reports: a self-contained folder (report.html + figures/ + audio/), relative links only."""

from neurovox.report.html import metric_table, write_comparison_report, write_report

__all__ = ["write_report", "write_comparison_report", "metric_table"]
