"""A postmortem generated from the timeline: the same facts as a Markdown file and a printable page.

`postmortem_build` gathers everything from the incident's events (and the
rows they produced): the summary, the impact, the durations from
`incidents.metrics`, the key moments (pinned events) ahead of the whole
timeline, and the action items with their owners and state. `to_markdown`
writes it out; the printable page renders the same object.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.utils import timezone

from .metrics import IncidentMetrics, format_duration, incident_metrics
from .models import AuditEvent, Incident
from .selectors import incident_get, pinned_seqs
from .timeline import describe_event  # the timeline's own words, shared with the room

PIN_TYPES = (AuditEvent.Type.EVENT_PINNED, AuditEvent.Type.EVENT_UNPINNED)


@dataclass
class Row:
    seq: int
    at: datetime
    actor: str
    text: str
    pinned: bool = False


@dataclass
class Postmortem:
    incident: Incident
    metrics: IncidentMetrics
    generated_at: datetime
    key_moments: list[Row] = field(default_factory=list)
    timeline: list[Row] = field(default_factory=list)
    action_items: list[dict[str, Any]] = field(default_factory=list)
    peak_severity: str = ""
    resolution: str = ""

    @property
    def durations(self) -> list[tuple[str, str]]:
        m = self.metrics
        rows = [
            ("Time to identify", format_duration(m.time_to_identify)),
            ("Time to mitigate (monitoring)", format_duration(m.time_to_mitigate)),
            ("Time to resolve", format_duration(m.time_to_resolve)),
            ("Time open", format_duration(m.time_open)),
        ]
        rows += [(f"Time {name}", format_duration(value)) for name, value in m.time_in_status.items()]
        rows.append(("Reopens", str(m.reopens)))
        return rows

    @property
    def impact(self) -> list[str]:
        m = self.metrics
        lines = [
            f"Severity {self.incident.severity}"
            + (f" (at its worst {self.peak_severity})" if self.peak_severity else ""),
            (f"Resolved after {format_duration(m.time_to_resolve)}" if m.time_to_resolve is not None else "Still open")
            + f"; open for {format_duration(m.time_open)} in all"
            + (f", reopened {m.reopens} time{'s' if m.reopens != 1 else ''}" if m.reopens else ""),
            f"{len(m.responders)} responder{'s' if len(m.responders) != 1 else ''} acted: "
            + ", ".join(f"{r.username} ({r.events})" for r in m.responders),
            f"Action items: {m.action_items_open} open, {m.action_items_done} done",
        ]
        return lines


def _peak_severity(events: list[AuditEvent]) -> str:
    rank = Incident.SEVERITY_RANK
    seen = [str(e.data.get("severity", "")) for e in events if e.type == AuditEvent.Type.INCIDENT_CREATED]
    seen += [str(e.data.get("to", "")) for e in events if e.type == AuditEvent.Type.SEVERITY_CHANGE]
    seen = [s for s in seen if s in rank]
    return min(seen, key=lambda s: rank[s]) if seen else ""


def postmortem_build(incident_id: int, *, now: datetime | None = None) -> Postmortem | None:
    """The postmortem of one incident, or None if there is no such incident."""
    incident = incident_get(incident_id)
    if incident is None:
        return None
    events = list(incident.events.order_by("seq"))
    pinned = pinned_seqs(incident.pk)
    rows = [
        Row(seq=e.seq, at=e.at, actor=e.actor_username, text=describe_event(e), pinned=e.seq in pinned)
        for e in events
        if e.type not in PIN_TYPES
    ]
    resolutions = [
        str(e.data.get("resolution") or "")
        for e in events
        if e.type == AuditEvent.Type.STATUS_CHANGE and e.data.get("to") == Incident.Status.RESOLVED
    ]
    peak = _peak_severity(events)
    return Postmortem(
        incident=incident,
        metrics=incident_metrics(events, now=now or timezone.now()),
        generated_at=now or timezone.now(),
        key_moments=[row for row in rows if row.pinned],
        timeline=rows,
        action_items=[item.as_data() for item in incident.action_items.all()],
        peak_severity=peak if peak and peak != incident.severity else "",
        resolution=resolutions[-1] if incident.status == Incident.Status.RESOLVED and resolutions else "",
    )


def _cell(text: Any) -> str:
    """Text safe inside a Markdown table cell: one line, pipes escaped."""
    return " ".join(str(text).split()).replace("\\", "\\\\").replace("|", "\\|")


def _when(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _timeline_table(rows: list[Row]) -> list[str]:
    lines = ["| # | Time (UTC) | Who | What |", "|---:|---|---|---|"]
    lines += [
        f"| {row.seq} | {_when(row.at)} | {_cell(row.actor)} | {'📌 ' if row.pinned else ''}{_cell(row.text)} |"
        for row in rows
    ]
    return lines


def to_markdown(pm: Postmortem) -> str:
    incident = pm.incident
    m = pm.metrics
    commander = incident.commander.username if incident.commander else "none"
    lines = [
        f"# Postmortem: #{incident.pk} {_cell(incident.title)}",
        "",
        "| | |",
        "|---|---|",
        f"| Severity | {incident.severity} |",
        f"| Status | {incident.status} |",
        f"| Commander | {_cell(commander)} |",
        f"| Opened | {_when(m.opened_at)} UTC by {_cell(incident.created_by.username)} |",
        f"| Resolved | {_when(m.resolved_at) + ' UTC' if m.resolved_at else 'not yet'} |",
        f"| Generated | {_when(pm.generated_at)} UTC from {m.events} events |",
        "",
        "## Summary",
        "",
        incident.summary.strip() or "_No summary was written._",
        "",
    ]
    if pm.resolution:
        lines += ["## Resolution", "", pm.resolution.strip(), ""]
    lines += ["## Impact", ""] + [f"- {_cell(line)}" for line in pm.impact] + [""]
    lines += ["## Durations", "", "| Measure | Duration |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in pm.durations] + [""]
    lines += ["## Key moments", ""]
    lines += _timeline_table(pm.key_moments) if pm.key_moments else ["_No events were pinned._"]
    lines += ["", "## Timeline", "", *_timeline_table(pm.timeline), ""]
    lines += ["## Action items", ""]
    if pm.action_items:
        lines += ["| Item | Owner | State |", "|---|---|---|"]
        lines += [
            f"| {_cell(item['title'])} | {_cell(item['owner']['username']) if item['owner'] else '—'} | "
            f"{'done' if item['done'] else 'open'} |"
            for item in pm.action_items
        ]
    else:
        lines.append("_No action items._")
    lines.append("")
    return "\n".join(lines)
