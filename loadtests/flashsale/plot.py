"""PNG charts of flash-sale reports (report.py's dicts): one run over time, or the modes overlaid.

Drawn on a bare matplotlib Figure, which renders PNG with the Agg canvas and never touches pyplot's global state or
a display, so it works on a headless runner and from several threads.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure

figure_size_in = (11.0, 7.5)
figure_dpi = 110
kill_color = "tab:red"
sellout_color = "tab:gray"
passed_color = "tab:green"
failed_color = "tab:red"


def _floats(values: Sequence[float | None]) -> list[float]:
    # matplotlib leaves a gap at NaN, which is right for a second in which no hold was answered
    return [math.nan if v is None else float(v) for v in values]


def _per_s(counts: Sequence[int], bucket_s: float) -> list[float]:
    return [c / bucket_s for c in counts]


def _centres(timeline: Mapping[str, Any]) -> list[float]:
    # a bucket's figure belongs to its whole width: drawn at the centre, a stall after a kill sits right of the kill
    half_s = float(timeline["bucket_s"]) / 2
    return [t + half_s for t in timeline["t_s"]]


def _verdict(report: Mapping[str, Any]) -> tuple[str, str]:
    return ("audit PASSED", passed_color) if report.get("audit_passed") else ("audit FAILED", failed_color)


def _log_if_positive(axes: Axes, series: Sequence[Sequence[float]]) -> None:
    # a log axis with nothing positive on it makes matplotlib warn and draw nothing useful
    if any(v > 0 for values in series for v in values if not math.isnan(v)):
        axes.set_yscale("log")


def _mark_events(axes: Axes, report: Mapping[str, Any], label: bool) -> None:
    for i, kill_s in enumerate(report.get("kills_s", [])):
        axes.axvline(kill_s, color=kill_color, linestyle="--", linewidth=1.2,
                     label="actor kill" if label and i == 0 else None)
    sellout_s = report.get("sellout_s")
    if sellout_s is not None:
        axes.axvline(sellout_s, color=sellout_color, linestyle=":", linewidth=1.2, label="sold out" if label else None)


def _title(report: Mapping[str, Any]) -> str:
    return (
        f"{report['mode']}: {report['buyers']:,} buyers, {report['seats']:,} seats + {report['ga_capacity']:,} GA"
        f" over {report['arrival_seconds']} s"
    )


def plot_report(report: Mapping[str, Any], path: Path) -> None:
    timeline = report["timeline"]
    bucket_s = float(timeline["bucket_s"])
    t_s = _centres(timeline)
    figure = Figure(figsize=figure_size_in, dpi=figure_dpi, layout="constrained")
    throughput, latency = figure.subplots(2, 1, sharex=True)

    throughput.plot(t_s, _per_s(timeline["holds_decided"], bucket_s), label="holds decided/s (201+409)", linewidth=1.6)
    throughput.plot(t_s, _per_s(timeline["holds_ok"], bucket_s), label="holds ok/s (201)", linewidth=1.2)
    throughput.plot(t_s, _per_s(timeline["confirms_ok"], bucket_s), label="confirms ok/s", linewidth=1.2)
    if any(timeline["errors"]):
        throughput.plot(t_s, _per_s(timeline["errors"], bucket_s), label="errors/s", linewidth=1.0,
                        color="black", alpha=0.6)
    _mark_events(throughput, report, label=True)
    throughput.set_ylabel(f"per second ({bucket_s:g} s buckets)")
    throughput.set_ylim(bottom=0)
    throughput.grid(alpha=0.3)
    throughput.legend(loc="upper right", fontsize="small")

    p50 = _floats(timeline["hold_p50_ms"])
    p99 = _floats(timeline["hold_p99_ms"])
    latency.plot(t_s, p50, label="hold p50", linewidth=1.4)
    latency.plot(t_s, p99, label="hold p99", linewidth=1.4)
    _mark_events(latency, report, label=True)
    _log_if_positive(latency, [p50, p99])
    latency.set_ylabel("hold latency ms (from due)")
    latency.set_xlabel("seconds since sale start (by answer time)")
    latency.grid(alpha=0.3, which="both")
    latency.legend(loc="upper right", fontsize="small")

    if not t_s:
        throughput.text(0.5, 0.5, "no hold or confirm answered", transform=throughput.transAxes, ha="center")
    verdict, color = _verdict(report)
    figure.suptitle(_title(report), fontsize="large")
    throughput.set_title(verdict, color=color, fontweight="bold", fontsize="medium")
    figure.savefig(path, format="png")


def plot_comparison(reports: Mapping[str, Mapping[str, Any]], path: Path) -> None:
    figure = Figure(figsize=figure_size_in, dpi=figure_dpi, layout="constrained")
    throughput, latency = figure.subplots(2, 1, sharex=True)
    p99_series = []
    for mode, report in reports.items():
        timeline = report["timeline"]
        verdict, _ = _verdict(report)
        line = throughput.plot(_centres(timeline), _per_s(timeline["holds_decided"], float(timeline["bucket_s"])),
                               label=f"{mode} ({verdict})", linewidth=1.4)[0]
        p99 = _floats(timeline["hold_p99_ms"])
        p99_series.append(p99)
        latency.plot(_centres(timeline), p99, label=f"{mode} hold p99", linewidth=1.4, color=line.get_color())
        for kill_s in report.get("kills_s", []):
            throughput.axvline(kill_s, color=line.get_color(), linestyle="--", linewidth=1.0, alpha=0.7)
    throughput.set_ylabel("holds decided/s")
    throughput.set_ylim(bottom=0)
    throughput.grid(alpha=0.3)
    throughput.legend(loc="upper right", fontsize="small", title="dashed: actor kills", title_fontsize="small")
    _log_if_positive(latency, p99_series)
    latency.set_ylabel("hold p99 ms (from due)")
    latency.set_xlabel("seconds since sale start (by answer time)")
    latency.grid(alpha=0.3, which="both")
    latency.legend(loc="upper right", fontsize="small")
    first = next(iter(reports.values()), None)
    title = "flash sale: modes compared" if first is None else f"modes compared: {_title(first).split(': ', 1)[1]}"
    figure.suptitle(title, fontsize="large")
    figure.savefig(path, format="png")
