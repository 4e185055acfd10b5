"""The overview over a period: how many incidents, how bad, how fast they were resolved, which stage is slowest.

`overview_compute` is a pure function of rows (severity, status and the
moments the status command stamped in the same transaction as its events),
so it is tested with known values; `overview_get` reads those rows in one
indexed query (incidents opened in the period), fast at 10,000 incidents.
The charts are drawn on the server as SVG from `chart_*` geometry, with
the same numbers in a table beside them.
"""

import csv
import io
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from django.utils import timezone

from .metrics import format_duration
from .models import Incident

SEVERITIES = list(Incident.SEVERITY_RANK)  # most severe first
STATUSES = ["investigating", "identified", "monitoring", "resolved"]
STAGES = ["identify", "mitigate", "resolve"]


@dataclass(frozen=True)
class Row:
    id: int
    severity: str
    status: str
    created_at: datetime
    identified_at: datetime | None
    mitigated_at: datetime | None
    resolved_at: datetime | None


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile: the smallest value with at least p% of the values at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def week_start(moment: datetime) -> date:
    day = timezone.localtime(moment).date() if timezone.is_aware(moment) else moment.date()
    return day - timedelta(days=day.weekday())


def overview_compute(rows: Iterable[Row], *, since: date, until: date) -> dict[str, Any]:
    """Counts, times to resolve by severity, incidents per week and the slowest stage, for rows opened in the period."""
    rows = list(rows)
    by_severity_status = {sev: {st: 0 for st in STATUSES} for sev in SEVERITIES}
    ttr: dict[str, list[float]] = {sev: [] for sev in SEVERITIES}
    stages: dict[str, list[float]] = {stage: [] for stage in STAGES}
    weeks: dict[date, int] = {}
    first_week = since - timedelta(days=since.weekday())
    week = first_week
    while week <= until:
        weeks[week] = 0
        if week > date.max - timedelta(days=7):
            break  # the last week of the calendar
        week += timedelta(days=7)
    for row in rows:
        by_severity_status[row.severity][row.status] += 1
        if row.resolved_at is not None:
            ttr[row.severity].append((row.resolved_at - row.created_at).total_seconds())
        if row.identified_at is not None:
            stages["identify"].append((row.identified_at - row.created_at).total_seconds())
            if row.mitigated_at is not None:
                stages["mitigate"].append((row.mitigated_at - row.identified_at).total_seconds())
                if row.resolved_at is not None:
                    stages["resolve"].append((row.resolved_at - row.mitigated_at).total_seconds())
        start = week_start(row.created_at)
        weeks[start] = weeks.get(start, 0) + 1
    stage_means = {stage: mean(values) for stage, values in stages.items()}
    measured = {stage: value for stage, value in stage_means.items() if value is not None}
    slowest = max(measured, key=lambda stage: measured[stage]) if measured else None
    return {
        "since": since.isoformat(),
        "until": until.isoformat(),
        "total": len(rows),
        "by_severity": [
            {
                "severity": sev,
                "total": sum(by_severity_status[sev].values()),
                "by_status": by_severity_status[sev],
                "resolved": len(ttr[sev]),
                "mean_time_to_resolve": _round(mean(ttr[sev])),
                "p90_time_to_resolve": _round(percentile(ttr[sev], 90)),
            }
            for sev in SEVERITIES
        ],
        "by_status": {st: sum(by_severity_status[sev][st] for sev in SEVERITIES) for st in STATUSES},
        "per_week": [{"week": start.isoformat(), "incidents": count} for start, count in sorted(weeks.items())],
        "stages": [
            {"stage": stage, "measured": len(stages[stage]), "mean": _round(stage_means[stage])} for stage in STAGES
        ],
        "slowest_stage": slowest,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def period_bounds(since: date, until: date) -> tuple[datetime, datetime]:
    """The period's days, both included, as [start, end] moments in the current time zone."""
    start = timezone.make_aware(datetime.combine(since, time.min))
    end = timezone.make_aware(datetime.combine(until, time.max))
    return start, end


def overview_rows(since: date, until: date) -> list[Row]:
    """One query over the `created_at` index: the incidents opened in the period, only the fields needed."""
    start, end = period_bounds(since, until)
    values = Incident.objects.filter(created_at__gte=start, created_at__lte=end).values_list(
        "id", "severity", "status", "created_at", "identified_at", "mitigated_at", "resolved_at"
    )
    return [Row(*value) for value in values]


def default_period(today: date | None = None) -> tuple[date, date]:
    """The last 30 days, today included."""
    today = today or timezone.localdate()
    return today - timedelta(days=29), today


# --- Charts: numbers in, geometry out (the template draws it) -----------------------------------


def chart_weeks(per_week: list[dict[str, Any]], *, width: int = 1000, height: int = 180) -> dict[str, Any]:
    """Bars of incidents per week, each with its count above it."""
    top = max([w["incidents"] for w in per_week] + [1])
    gap = 8
    bar = min(80.0, max(2.0, (width - gap * len(per_week)) / max(len(per_week), 1)))
    plot = height - 40  # room for the count above and the date below
    bars = []
    for i, week in enumerate(per_week):
        h = round(week["incidents"] / top * plot, 1)
        x = round(i * (bar + gap), 1)
        bars.append(
            {
                "x": x,
                "y": round(height - 20 - h, 1),
                "w": round(bar, 1),
                "h": h,
                "mid": round(x + bar / 2, 1),
                "label": week["week"][5:],
                "value": week["incidents"],
                "week": week["week"],
            }
        )
    return {"width": width, "height": height, "bars": bars, "top": top, "label_every": max(1, len(bars) // 12)}


def chart_resolve(by_severity: list[dict[str, Any]], *, width: int = 640) -> dict[str, Any]:
    """Horizontal bars: mean and p90 time to resolve per severity, on one scale."""
    top = max(
        [s["p90_time_to_resolve"] or 0 for s in by_severity]
        + [s["mean_time_to_resolve"] or 0 for s in by_severity]
        + [1]
    )
    label_w, row_h = 90, 36
    scale = (width - label_w - 170) / top  # room for "3 h 44 min / 6 h 18 min" after the longest bar
    rows = []
    for i, sev in enumerate(by_severity):
        mean_s, p90_s = sev["mean_time_to_resolve"], sev["p90_time_to_resolve"]
        rows.append(
            {
                "severity": sev["severity"],
                "y": i * row_h,
                "mean_w": round((mean_s or 0) * scale, 1),
                "p90_w": round((p90_s or 0) * scale, 1),
                "mean": format_duration(mean_s),
                "p90": format_duration(p90_s),
                "label_x": label_w,
            }
        )
    return {"width": width, "height": row_h * len(rows), "rows": rows, "label_w": label_w}


def chart_status(by_severity: list[dict[str, Any]], *, width: int = 640) -> dict[str, Any]:
    """Stacked bars: each severity's incidents split by status."""
    top = max([s["total"] for s in by_severity] + [1])
    label_w, row_h = 90, 28
    scale = (width - label_w - 40) / top
    rows = []
    for i, sev in enumerate(by_severity):
        x = float(label_w)
        parts = []
        for status in STATUSES:
            w = sev["by_status"][status] * scale
            if w:
                parts.append({"status": status, "x": round(x, 1), "w": round(w, 1), "value": sev["by_status"][status]})
            x += w
        rows.append(
            {"severity": sev["severity"], "y": i * row_h, "parts": parts, "total": sev["total"], "end": round(x + 6, 1)}
        )
    return {"width": width, "height": row_h * len(rows), "rows": rows}


CSV_HEADER = [
    "id",
    "title",
    "severity",
    "status",
    "opened_at",
    "identified_at",
    "mitigated_at",
    "resolved_at",
    "time_to_identify",
    "time_to_mitigate",
    "time_to_resolve",
]


def overview_csv_lines(since: date, until: date) -> Iterator[str]:
    """CSV lines, streamed: the incidents opened in the period, oldest first, in chunks (not all in memory)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def line(values: list[Any]) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(values)
        return buffer.getvalue()

    def iso(value: datetime | None) -> str:
        return value.isoformat().replace("+00:00", "Z") if value else ""

    def secs(start: datetime, end: datetime | None) -> str:
        return f"{(end - start).total_seconds():.3f}" if end else ""

    yield line(CSV_HEADER)
    start, end = period_bounds(since, until)
    rows = (
        Incident.objects.filter(created_at__gte=start, created_at__lte=end)
        .order_by("created_at", "id")
        .values_list("id", "title", "severity", "status", "created_at", "identified_at", "mitigated_at", "resolved_at")
    )
    for pk, title, severity, status, opened, identified, mitigated, resolved in rows.iterator(chunk_size=2000):
        yield line(
            [
                pk,
                _csv_safe(title),
                severity,
                status,
                iso(opened),
                iso(identified),
                iso(mitigated),
                iso(resolved),
                secs(opened, identified),
                secs(opened, mitigated),
                secs(opened, resolved),
            ]
        )


def _csv_safe(text: str) -> str:
    """A title that a spreadsheet would run as a formula is prefixed with a quote (CSV injection)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
