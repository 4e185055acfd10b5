"""The incident list you can search: pages with a count, search over title/summary/notes, mine, dates, sorting."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import User
from incidents import commands
from incidents.models import Incident

pytestmark = pytest.mark.django_db

Api = Callable[[User | None], APIClient]
HTMX = {"HX-Request": "true"}
DASH = "\N{EN DASH}"


def make(actor: User, title: str, severity: str = "high", **extra: Any) -> Incident:
    return commands.incident_create(actor=actor, title=title, severity=severity, **extra).incident


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def titles(api_client: APIClient, **query: str) -> list[str]:
    response = api_client.get("/api/incidents", query)
    assert response.status_code == 200, response.json()
    return [row["title"] for row in response.json()["results"]]


def test_the_list_pages_with_a_count_instead_of_a_silent_cap(responder: User) -> None:
    for n in range(55):
        make(responder, f"incident {n:02}")
    client = client_for(responder)
    page = client.get(reverse("incident-list")).content.decode()
    assert f"Showing 1{DASH}50 of 55 incidents" in page
    assert page.count('id="incident-row-') == 50
    assert 'href="?page=2" rel="next"' in page
    second = client.get(reverse("incident-list"), {"page": "2"}).content.decode()
    assert f"Showing 51{DASH}55 of 55 incidents" in second
    assert second.count('id="incident-row-') == 5
    assert "incident 00" in second  # the oldest is on the last page, not gone


@pytest.mark.parametrize("q", ["checkout", "deploy 8812", "rolled"])
def test_search_covers_title_summary_and_notes(api: Api, responder: User, q: str) -> None:
    target = make(responder, "Checkout latency", summary="p99 above 2 s since deploy 8812")
    commands.incident_add_note(actor=responder, incident_id=target.pk, body="We rolled the canary back")
    other = make(responder, "Login broken", summary="SSO provider down")
    commands.incident_add_note(actor=responder, incident_id=other.pk, body="waiting on the vendor")
    assert titles(api(responder), q=q) == ["Checkout latency"]
    page = client_for(responder).get(reverse("incident-list"), {"q": q}).content.decode()
    assert "Checkout latency" in page and "Login broken" not in page


def test_mine_is_what_i_command_am_assigned_to_or_own_an_item_of(
    api: Api, responder: User, make_user: Callable[..., User]
) -> None:
    me = make_user("responder", "mia")
    commanded = make(responder, "commanded")
    commands.incident_update(actor=responder, incident_id=commanded.pk, commander=me)
    assigned = make(responder, "assigned")
    commands.incident_update(actor=responder, incident_id=assigned.pk, assignees=[me, responder])
    owned = make(responder, "owned item")
    commands.action_item_add(actor=responder, incident_id=owned.pk, title="a", owner=me)
    commands.action_item_add(actor=responder, incident_id=owned.pk, title="b", owner=me)  # still listed once
    make(responder, "not mine")
    assert sorted(titles(api(me), mine="true")) == ["assigned", "commanded", "owned item"]
    page = client_for(me).get(reverse("incident-list"), {"mine": "on"}).content.decode()
    assert f"Showing 1{DASH}3 of 3 incidents" in page and "not mine" not in page


def test_a_date_range_bounds_the_opening_day(api: Api, responder: User, monkeypatch: pytest.MonkeyPatch) -> None:
    for day in (1, 2, 3):
        moment = datetime(2026, 11, day, 12, 0, tzinfo=UTC)
        monkeypatch.setattr(timezone, "now", lambda moment=moment: moment)
        make(responder, f"day {day}")
    monkeypatch.undo()
    assert titles(api(responder), since="2026-11-02", until="2026-11-02") == ["day 2"]
    assert titles(api(responder), since="2026-11-02") == ["day 3", "day 2"]
    assert titles(api(responder), until="2026-11-01") == ["day 1"]


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("title", ["alpha", "Bravo", "charlie"]),
        ("-title", ["charlie", "Bravo", "alpha"]),
        ("severity", ["charlie", "alpha", "Bravo"]),
        ("-severity", ["Bravo", "alpha", "charlie"]),
        ("status", ["charlie", "Bravo", "alpha"]),  # ties: the newest first
        ("duration", ["Bravo", "alpha", "charlie"]),
        ("opened", ["alpha", "Bravo", "charlie"]),
    ],
)
def test_columns_sort_both_ways(
    api: Api, responder: User, monkeypatch: pytest.MonkeyPatch, sort: str, expected: list[str]
) -> None:
    t0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)

    def at(minutes: int) -> None:
        monkeypatch.setattr(timezone, "now", lambda: t0 + timedelta(minutes=minutes))

    at(0)
    alpha = make(responder, "alpha", "high")
    at(1)
    bravo = make(responder, "Bravo", "low")
    at(2)
    make(responder, "charlie", "critical")
    at(3)
    commands.incident_change_status(
        actor=responder, incident_id=bravo.pk, status="resolved", resolution="Fixed."
    )  # after 2 min
    at(30)
    commands.incident_change_status(
        actor=responder, incident_id=alpha.pk, status="resolved", resolution="Fixed."
    )  # after 30 min
    monkeypatch.undo()
    assert titles(api(responder), sort=sort) == expected


def test_sort_headers_say_their_direction_and_flip(responder: User) -> None:
    make(responder, "one")
    page = client_for(responder).get(reverse("incident-list"), {"sort": "title", "q": "one"}).content.decode()
    header = page.split('aria-sort="ascending"')[1].split("</th>")[0]
    assert "Title ▲" in header and "sort=-title" in header and "q=one" in header


@pytest.mark.parametrize(
    "query",
    [
        {"status": "closed"},
        {"sort": "colour"},
        {"since": "yesterday"},
        {"since": "2026-11-05", "until": "2026-11-01"},
        {"mine": "perhaps"},
        {"until": "9999-12-31", "since": "10000-01-01"},
    ],
)
def test_bad_list_filters_are_a_clear_400(api: Api, responder: User, query: dict[str, str]) -> None:
    make(responder, "one")
    assert api(responder).get("/api/incidents", query).status_code == 400
    response = client_for(responder).get(reverse("incident-list-rows"), query, headers=HTMX)
    assert response.status_code == 400
    assert "error-text" in response.content.decode()
    assert 'id="incident-row-' not in response.content.decode()


def test_the_rows_partial_updates_the_count_pages_and_address(responder: User) -> None:
    for n in range(3):
        make(responder, f"disk {n}")
    make(responder, "network")
    response = client_for(responder).get(reverse("incident-list-rows"), {"q": "disk"}, headers=HTMX)
    page = response.content.decode()
    assert response["HX-Replace-Url"] == "/?q=disk"
    assert page.strip().startswith('<tbody id="incident-rows">')
    assert 'id="list-meta"' in page and f"Showing 1{DASH}3 of 3 incidents" in page
    assert 'id="list-pages"' in page and 'id="incident-head"' in page


def test_a_list_page_reads_in_a_fixed_number_of_queries(responder: User, django_assert_num_queries: Any) -> None:
    me = responder
    for n in range(5):
        incident = make(responder, f"disk {n}")
        commands.action_item_add(actor=responder, incident_id=incident.pk, title="x", owner=me)
    client = client_for(me)
    with django_assert_num_queries(4):  # session, user, count, page
        client.get(reverse("incident-list"), {"q": "disk", "mine": "on", "sort": "-duration"})


def test_the_last_day_of_the_calendar_is_a_bound_like_any_other(api: Api, responder: User) -> None:
    make(responder, "one")
    assert titles(api(responder), since="0001-01-01", until="9999-12-31") == ["one"]
