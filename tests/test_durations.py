"""Durations computed from the timeline: every figure checked exactly on timelines with known timestamps."""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from incidents.metrics import format_duration, incident_metrics

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


@dataclass
class Ev:
    seq: int
    type: str
    at: datetime
    actor_id: int = 1
    actor_username: str = "alice"
    data: dict[str, Any] = field(default_factory=dict)


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def timeline(*moves: tuple[float, str], actor: int = 1) -> list[Ev]:
    """incident_created at T0, then one status_change per (minute, status)."""
    events = [Ev(1, "incident_created", T0, data={"title": "t", "severity": "high", "summary": ""})]
    status = "investigating"
    for at, new in moves:
        events.append(Ev(len(events) + 1, "status_change", minutes(at), actor, data={"from": status, "to": new}))
        status = new
    return events


def secs(**in_status: float) -> dict[str, float]:
    base = {"investigating": 0.0, "identified": 0.0, "monitoring": 0.0, "resolved": 0.0}
    return {**base, **{name: value * 60 for name, value in in_status.items()}}


def test_each_stage_of_a_straight_run_to_resolved() -> None:
    events = timeline((5, "identified"), (20, "monitoring"), (30, "resolved"))
    data = incident_metrics(events, now=minutes(90)).as_data()
    assert data["time_to_identify"] == 300
    assert data["time_to_mitigate"] == 1200
    assert data["time_to_resolve"] == 1800
    assert data["time_open"] == 1800
    assert data["elapsed"] == 1800
    assert data["time_in_status"] == secs(investigating=5, identified=15, monitoring=10)
    assert data["reopens"] == 0
    assert data["status"] == "resolved"
    assert data["opened_at"] == "2026-11-26T09:00:00Z"
    assert data["identified_at"] == "2026-11-26T09:05:00Z"
    assert data["mitigated_at"] == "2026-11-26T09:20:00Z"
    assert data["resolved_at"] == "2026-11-26T09:30:00Z"
    assert data["as_of"] == "2026-11-26T10:30:00Z"


def test_an_open_incident_counts_its_current_status_up_to_now_and_has_no_time_to_resolve() -> None:
    metrics = incident_metrics(timeline((5, "identified")), now=minutes(42))
    data = metrics.as_data()
    assert data["time_to_identify"] == 300
    assert data["time_to_mitigate"] is None
    assert data["time_to_resolve"] is None
    assert data["resolved_at"] is None
    assert data["time_in_status"] == secs(investigating=5, identified=37)
    assert data["time_open"] == 42 * 60
    assert data["elapsed"] == 42 * 60  # its age, while open


def test_a_reopen_counts_investigating_again_and_the_resolved_stretch_it_ended() -> None:
    # Resolved straight away at 10, reopened at 30, identified at 40, resolved for good at 50.
    events = timeline((10, "resolved"), (30, "investigating"), (40, "identified"), (50, "resolved"))
    data = incident_metrics(events, now=minutes(200)).as_data()
    assert data["reopens"] == 1
    assert data["time_in_status"] == secs(investigating=20, identified=10, resolved=20)
    assert data["time_open"] == 30 * 60
    # First arrivals: resolving at 10 also counted as identified and mitigated.
    assert data["time_to_identify"] == 600
    assert data["time_to_mitigate"] == 600
    # The final resolution, not the first.
    assert data["time_to_resolve"] == 50 * 60
    assert data["resolved_at"] == "2026-11-26T09:50:00Z"


def test_a_reopened_incident_that_is_still_open_has_no_time_to_resolve() -> None:
    events = timeline((10, "monitoring"), (15, "resolved"), (25, "investigating"))
    data = incident_metrics(events, now=minutes(40)).as_data()
    assert data["time_to_resolve"] is None
    assert data["reopens"] == 1
    assert data["time_in_status"] == secs(investigating=25, monitoring=5, resolved=10)
    assert data["time_to_mitigate"] == 600
    assert data["elapsed"] == 40 * 60


def test_an_event_stamped_before_the_one_committed_ahead_of_it_takes_that_events_time() -> None:
    # seq 3 carries a clock 2 minutes behind seq 2's (another server's clock).
    events = timeline((10, "identified"), (8, "monitoring"), (20, "resolved"))
    data = incident_metrics(events, now=minutes(60)).as_data()
    assert data["time_in_status"] == secs(investigating=10, identified=0, monitoring=10)
    assert data["time_to_identify"] == 600
    assert data["time_to_mitigate"] == 600
    assert data["time_to_resolve"] == 1200
    assert data["time_open"] == data["time_to_resolve"]  # the stages still add up to the whole


def test_events_are_read_in_seq_order_whatever_order_they_are_given_in() -> None:
    events = timeline((5, "identified"), (20, "resolved"))
    forward = incident_metrics(events, now=minutes(30)).as_data()
    backward = incident_metrics(list(reversed(events)), now=minutes(30)).as_data()
    assert forward == backward
    assert forward["time_in_status"] == secs(investigating=5, identified=15)


def test_now_before_the_last_event_is_taken_as_the_last_event() -> None:
    data = incident_metrics(timeline((5, "identified")), now=minutes(1)).as_data()
    assert data["as_of"] == "2026-11-26T09:05:00Z"
    assert data["time_in_status"] == secs(investigating=5)


def test_responders_who_acted_in_order_of_first_action_with_their_counts() -> None:
    events = timeline((5, "identified"))
    events.append(Ev(3, "note", minutes(6), 2, "bob", {"body": "rolled back"}))
    events.append(Ev(4, "note", minutes(7), 2, "bob", {"body": "still bad"}))
    events.append(Ev(5, "status_change", minutes(9), 3, "carol", {"from": "identified", "to": "monitoring"}))
    data = incident_metrics(events, now=minutes(10)).as_data()
    assert data["responders"] == [
        {"id": 1, "username": "alice", "events": 2},
        {"id": 2, "username": "bob", "events": 2},
        {"id": 3, "username": "carol", "events": 1},
    ]
    assert data["events"] == 5


def test_action_items_open_and_done_follow_their_latest_event() -> None:
    events = timeline()
    item = {"title": "x", "owner": None}
    events += [
        Ev(2, "action_item_added", minutes(1), data={"item": {"id": 10, "done": False, **item}}),
        Ev(3, "action_item_added", minutes(2), data={"item": {"id": 11, "done": False, **item}}),
        Ev(4, "action_item_added", minutes(3), data={"item": {"id": 12, "done": False, **item}}),
        Ev(5, "action_item_updated", minutes(4), data={"item": {"id": 10, "done": True, **item}, "changed": ["done"]}),
        Ev(6, "action_item_updated", minutes(5), data={"item": {"id": 11, "done": True, **item}, "changed": ["done"]}),
        Ev(7, "action_item_updated", minutes(6), data={"item": {"id": 11, "done": False, **item}, "changed": ["done"]}),
    ]
    assert incident_metrics(events, now=minutes(7)).as_data()["action_items"] == {"open": 2, "done": 1}


def test_stages_give_each_step_its_own_length() -> None:
    metrics = incident_metrics(timeline((5, "identified"), (20, "monitoring"), (30, "resolved")), now=minutes(30))
    assert metrics.stages == [
        ("identify", timedelta(minutes=5)),
        ("mitigate", timedelta(minutes=15)),
        ("resolve", timedelta(minutes=10)),
    ]


@pytest.mark.parametrize("events", [[], [Ev(1, "note", T0, data={"body": "x"})]])
def test_a_timeline_must_start_with_its_opening(events: list[Ev]) -> None:
    with pytest.raises(ValueError, match="incident_created"):
        incident_metrics(events, now=T0)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "—"),
        (timedelta(seconds=45), "45 s"),
        (timedelta(minutes=12, seconds=59), "12 min"),
        (timedelta(hours=1, minutes=5), "1 h 5 min"),
        (timedelta(hours=3), "3 h"),
        (timedelta(days=2, hours=3, minutes=1), "2 d 3 h"),
        (86400.0, "1 d"),
    ],
)
def test_durations_read_as_people_say_them(value: Any, text: str) -> None:
    assert format_duration(value) == text
