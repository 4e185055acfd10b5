"""After the incident in the web pages: durations, the whole timeline, pins and the printable postmortem."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from incidents import commands
from incidents.models import AuditEvent, Incident

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def make_incident(actor: User, title: str = "Checkout latency spike", **extra: Any) -> Incident:
    return commands.incident_create(actor=actor, title=title, severity="high", **extra).incident


def client_for(user: User | None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def resolved_after(actor: User, minutes: int, monkeypatch: pytest.MonkeyPatch) -> Incident:
    """An incident opened at T0 and resolved `minutes` later, looked at an hour after that."""
    monkeypatch.setattr(timezone, "now", lambda: T0)
    incident = make_incident(actor)
    monkeypatch.setattr(timezone, "now", lambda: T0 + timedelta(minutes=minutes))
    commands.incident_change_status(actor=actor, incident_id=incident.pk, status="resolved", resolution="Fixed.")
    monkeypatch.undo()
    return incident


def test_a_resolved_room_shows_its_duration_not_its_age(responder: User, monkeypatch: pytest.MonkeyPatch) -> None:
    incident = resolved_after(responder, 7, monkeypatch)
    page = client_for(responder).get(reverse("incident-room", args=[incident.pk])).content.decode()
    meta = page.split('id="live-meta"')[1].split("</p>")[0]
    assert 'after <strong class="duration" title="Time to resolve">7 min</strong>' in meta
    assert "data-age" not in meta
    durations = page.split('id="live-durations"')[1].split("</dl>")[0]
    assert "<dt>To resolve</dt><dd>7 min</dd>" in durations


def test_an_open_room_shows_its_age(responder: User) -> None:
    incident = make_incident(responder)
    page = client_for(responder).get(reverse("incident-room", args=[incident.pk])).content.decode()
    meta = page.split('id="live-meta"')[1].split("</p>")[0]
    assert "data-age" in meta and "resolved" not in meta


def test_the_list_shows_the_duration_of_resolved_incidents(responder: User, monkeypatch: pytest.MonkeyPatch) -> None:
    incident = resolved_after(responder, 65, monkeypatch)
    open_one = make_incident(responder, "still open")
    page = client_for(responder).get(reverse("incident-list")).content.decode()
    row = page.split(f'id="incident-row-{incident.pk}"')[1].split("</tr>")[0]
    assert '<td data-label="Resolved after"><span class="duration"' in row and ">1 h 5 min</span>" in row
    assert "data-age" not in row
    assert "data-age" in page.split(f'id="incident-row-{open_one.pk}"')[1].split("</tr>")[0]


# --- The whole timeline ---------------------------------------------------------------------


@pytest.fixture
def long_incident(responder: User) -> Incident:
    incident = make_incident(responder)
    for n in range(249):
        commands.incident_add_note(actor=responder, incident_id=incident.pk, body=f"note {n + 2}")
    return incident  # 250 events: seq 1 opened, seq 2..250 notes "note 2".."note 250"


def seqs_in(html: str) -> list[int]:
    return [int(part.split('"')[0]) for part in html.split('data-seq="')[1:]]


def test_a_long_room_offers_older_events_instead_of_a_wall(responder: User, long_incident: Incident) -> None:
    page = client_for(responder).get(reverse("incident-room", args=[long_incident.pk])).content.decode()
    assert "Showing the newest" not in page
    assert f'hx-get="/incidents/{long_incident.pk}/partials/timeline?before=51"' in page
    assert seqs_in(page.split('id="timeline-list"')[1])[0] == 51


def test_older_pages_reach_the_first_event(responder: User, long_incident: Incident) -> None:
    client = client_for(responder)
    url = reverse("incident-timeline-partial", args=[long_incident.pk])
    page = client.get(url, {"before": 51}, headers=HTMX).content.decode()
    assert seqs_in(page) == list(range(1, 51))
    assert "The start of the timeline." in page and "Load older events" not in page
    page = client.get(url, {"before": 200}, headers=HTMX).content.decode()
    assert seqs_in(page) == list(range(100, 200))
    assert "?before=100" in page


def test_the_timeline_filter_finds_notes_and_counts_them(
    responder: User, long_incident: Incident, make_user: Any
) -> None:
    bob = make_user("responder", "bob")
    commands.incident_add_note(actor=bob, incident_id=long_incident.pk, body="Rolled back deploy 8812")
    client = client_for(responder)
    url = reverse("incident-timeline-partial", args=[long_incident.pk])
    page = client.get(url, {"into": "results", "q": "ROLLED back"}, headers=HTMX).content.decode()
    assert seqs_in(page) == [251]
    assert 'id="match-251"' in page and "1 matching event<" in page
    page = client.get(url, {"into": "results", "actor": bob.pk}, headers=HTMX).content.decode()
    assert seqs_in(page) == [251]
    page = client.get(url, {"into": "results", "type": "incident_created"}, headers=HTMX).content.decode()
    assert seqs_in(page) == [1]
    page = client.get(url, {"into": "results", "type": "note"}, headers=HTMX).content.decode()
    assert seqs_in(page) == list(range(152, 252))
    assert "250 matching events" in page and "before=152" in page and "Load older matches" in page


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ({"type": "chat"}, "Type: Select a valid choice."),
        ({"actor": "bob"}, "By: Enter a whole number."),
        ({"before": "0"}, "Before: Ensure this value is greater than or equal to 1."),
        ({"q": "x" * 201}, "Search notes: Ensure this value has at most 200 characters"),
    ],
)
def test_the_timeline_partial_refuses_bad_filters(responder: User, query: dict, says: str) -> None:
    incident = make_incident(responder)
    url = reverse("incident-timeline-partial", args=[incident.pk])
    response = client_for(responder).get(url, query, headers=HTMX)
    assert response.status_code == 400
    assert response.content.decode().startswith(f'<span class="error-text">{says}')


def test_the_timeline_partial_of_an_unknown_incident_is_404(responder: User) -> None:
    assert client_for(responder).get(reverse("incident-timeline-partial", args=[999])).status_code == 404


def test_the_timeline_partial_query_count_is_pinned(
    responder: User, long_incident: Incident, django_assert_num_queries: Any
) -> None:
    client = client_for(responder)
    url = reverse("incident-timeline-partial", args=[long_incident.pk])
    with django_assert_num_queries(5):  # session, user, incident, the page, the pins
        client.get(url, {"before": 200}, headers=HTMX)
    with django_assert_num_queries(6):  # and the count of matches
        client.get(url, {"into": "results", "type": "note"}, headers=HTMX)


# --- Pins -------------------------------------------------------------------------------------


def test_a_responder_pins_from_the_room(responder: User) -> None:
    incident = make_incident(responder)
    url = reverse("incident-event-pin", args=[incident.pk, 1])
    response = client_for(responder).post(url, {"pinned": "true"}, headers=HTMX)
    assert response.status_code == 204
    event = AuditEvent.objects.get(incident=incident, seq=2)
    assert event.type == "event_pinned" and event.data == {"seq": 1, "type": "incident_created"}
    page = client_for(responder).get(reverse("incident-room", args=[incident.pk])).content.decode()
    first = page.split('id="event-1"')[0].rsplit("<li", 1)[1]
    assert "is-pinned" in first
    pin = page.split('id="event-2"')[1].split("</li>")[0]
    assert "pinned event 1 (incident created)" in pin
    assert "Pin or unpin event 2" not in page  # a pin is not itself pinnable


def test_a_viewer_cannot_pin_from_the_room(viewer: User, responder: User) -> None:
    incident = make_incident(responder)
    response = client_for(viewer).post(reverse("incident-event-pin", args=[incident.pk, 1]), {"pinned": "true"})
    assert response.status_code == 403
    assert AuditEvent.objects.filter(incident=incident).count() == 1


@pytest.mark.parametrize(("seq", "data", "status"), [(1, {"pinned": "maybe"}, 400), (9, {"pinned": "true"}, 404)])
def test_a_bad_pin_changes_nothing(responder: User, seq: int, data: dict, status: int) -> None:
    incident = make_incident(responder)
    response = client_for(responder).post(reverse("incident-event-pin", args=[incident.pk, seq]), data, headers=HTMX)
    assert response.status_code == status
    assert AuditEvent.objects.filter(incident=incident).count() == 1


# --- The printable postmortem --------------------------------------------------------------------


def test_the_printable_postmortem_leads_with_the_pinned_events(responder: User, viewer: User) -> None:
    incident = make_incident(responder, summary="p99 above 2 s")
    commands.incident_add_note(actor=responder, incident_id=incident.pk, body="rolled back <b>8812</b>")
    commands.event_pin(actor=responder, incident_id=incident.pk, seq=2)
    page = client_for(viewer).get(reverse("incident-postmortem", args=[incident.pk])).content.decode()
    assert 'Postmortem: <span class="num">#' in page
    key = page.index("<h2>Key moments</h2>")
    timeline = page.index("<h2>Timeline</h2>")
    note = page.index("note: rolled back &lt;b&gt;8812&lt;/b&gt;")
    assert key < note < timeline
    assert f'href="/api/incidents/{incident.pk}/postmortem?download=true"' in page
    assert "data-print" in page


def test_the_room_links_the_postmortem_and_its_download(responder: User) -> None:
    incident = make_incident(responder)
    page = client_for(responder).get(reverse("incident-room", args=[incident.pk])).content.decode()
    assert f'href="/incidents/{incident.pk}/postmortem"' in page
    assert f'href="/api/incidents/{incident.pk}/postmortem?download=true" download' in page


def test_the_postmortem_page_of_an_unknown_incident_is_404(responder: User) -> None:
    assert client_for(responder).get(reverse("incident-postmortem", args=[999])).status_code == 404
