"""After the incident in a real browser: page back to the first of 600 events, pin it, download the postmortem;
and pictures of the overview and the postmortem.

With TAKE_SCREENSHOTS=1 the pictures go to docs/screenshots/ (otherwise to a temporary folder):

    TAKE_SCREENSHOTS=1 .venv/bin/pytest tests/test_browser_review.py
"""

import os
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from accounts.models import User
from incidents import commands
from incidents.models import Incident

from .scenes import checkout_latency_spike
from .servers import DaphneServer
from .test_browser import browser, signed_in_page, timeline_seqs  # noqa: F401 (the fixture is used by name)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DOCS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


@pytest.fixture
def long_incident(responder: User) -> Incident:
    """600 events: the opening, a move to identified, and 598 notes."""
    incident = commands.incident_create(actor=responder, title="Checkout latency spike", severity="high").incident
    commands.incident_change_status(actor=responder, incident_id=incident.pk, status="identified")
    for n in range(598):
        commands.incident_add_note(actor=responder, incident_id=incident.pk, body=f"check {n + 3}")
    return incident


def test_page_back_to_the_first_of_600_events_pin_it_and_download_the_postmortem(
    responder: User,
    long_incident: Incident,
    browser: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect

    with DaphneServer() as server:
        page = signed_in_page(browser, server, responder.username)
        page.goto(f"{server.url}/incidents/{long_incident.pk}/")
        expect(page.locator("#live-indicator")).to_have_text("● live")
        assert timeline_seqs(page)[0] == 401 and timeline_seqs(page)[-1] == 600

        # Older pages come from the server until the start of the timeline.
        while page.locator("#load-older").count():
            first = timeline_seqs(page)[0]
            page.click("#load-older")
            expect(page.locator(f"#event-{first - 100 if first > 100 else 1}")).to_have_count(1)
        expect(page.locator("#older-events")).to_have_text("The start of the timeline.")
        assert timeline_seqs(page) == list(range(1, 601))  # each event once, in order

        # Pin the opening: it is marked when the server's event_pinned arrives.
        opening = page.locator("#event-1")
        opening.hover()
        opening.locator(".pin-toggle").click()
        expect(page.locator("#event-601")).to_contain_text("pinned event 1")
        expect(opening).to_have_class("event ev-incident_created is-pinned")
        expect(opening.locator(".pin-toggle")).to_have_text("Unpin")

        # The filter finds the opening among 601 events.
        page.select_option("#timeline-filter select[name=type]", "incident_created")
        expect(page.locator("#timeline-results li")).to_have_count(1)
        expect(page.locator("#results-count")).to_have_text("1 matching event")
        page.select_option("#timeline-filter select[name=type]", "")
        expect(page.locator("#timeline-scroll")).to_be_visible()

        # The postmortem downloads as Markdown, the pinned opening leading it.
        with page.expect_download() as download_info:
            page.click("#postmortem-download")
        download = download_info.value
        assert download.suggested_filename == f"incident-{long_incident.pk}-postmortem.md"
        path = tmp_path / download.suggested_filename
        download.save_as(path)
        text = path.read_text(encoding="utf-8")
        assert text.startswith(f"# Postmortem: #{long_incident.pk} Checkout latency spike")
        key_moments = text.split("## Key moments")[1].split("## Timeline")[0]
        assert "| 1 |" in key_moments and "📌 opened it (high)" in key_moments
        assert text.count("\n| ") > 600  # the whole timeline is in it
        assert page.errors == []


@pytest.fixture
def review_scene(make_user: Callable[..., User], monkeypatch: pytest.MonkeyPatch) -> Incident:
    """Five weeks of incidents with believable durations, and one resolved incident with a story."""
    alice = make_user("responder", "alice", first_name="Alice", last_name="Kim")
    bob = make_user("responder", "bob", first_name="Bob", last_name="Lee")
    carol = make_user("responder", "carol")
    now = timezone.now()
    start = now - timedelta(days=29)  # all inside the overview's default 30 days

    def at(moment: Any) -> None:
        monkeypatch.setattr(timezone, "now", lambda: moment)

    severities = ["critical", "high", "high", "medium", "medium", "medium", "low", "low"]
    for n in range(40):
        opened = start + timedelta(days=n * 0.7, hours=n % 7)
        severity = severities[n % len(severities)]
        at(opened)
        pk = commands.incident_create(actor=bob, title=f"Incident {n}", severity=severity).incident.pk
        scale = {"critical": 1, "high": 2, "medium": 4, "low": 6}[severity] * (1 + n % 3)
        if n % 9 == 8:
            continue  # still investigating
        at(opened + timedelta(minutes=4 * scale))
        commands.incident_change_status(actor=bob, incident_id=pk, status="identified")
        if n % 11 == 10:
            continue
        at(opened + timedelta(minutes=15 * scale))
        commands.incident_change_status(actor=bob, incident_id=pk, status="monitoring")
        if n % 13 == 12:
            continue
        at(opened + timedelta(minutes=21 * scale))
        commands.incident_change_status(actor=bob, incident_id=pk, status="resolved", resolution="Fixed.")

    opened = now - timedelta(hours=3)
    at(opened)
    incident = checkout_latency_spike(alice)
    pk = incident.pk
    steps: list[tuple[int, Callable[[], Any]]] = [
        (1, lambda: commands.incident_update(actor=alice, incident_id=pk, commander=alice, assignees=[bob, carol])),
        (6, lambda: commands.incident_add_note(actor=bob, incident_id=pk, body="errors started at 13:58, deploy 8812")),
        (9, lambda: commands.incident_change_status(actor=alice, incident_id=pk, status="identified")),
        (12, lambda: commands.incident_add_note(actor=bob, incident_id=pk, body="rolled back 8812, watching p99")),
        (13, lambda: commands.action_item_add(actor=bob, incident_id=pk, title="roll back 8812", owner=bob)),
        (20, lambda: commands.incident_change_status(actor=alice, incident_id=pk, status="monitoring")),
        (24, lambda: commands.incident_add_note(actor=carol, incident_id=pk, body="p99 back under 400 ms")),
        (25, lambda: commands.action_item_add(actor=carol, incident_id=pk, title="add latency alert", owner=carol)),
        # Items are ticked before the resolve: a resolved incident's items are read-only until it is reopened.
        (
            30,
            lambda: commands.action_item_update(
                actor=bob, incident_id=pk, item_id=incident.action_items.get(title="roll back 8812").pk, done=True
            ),
        ),
        (
            31,
            lambda: commands.incident_change_status(
                actor=alice, incident_id=pk, status="resolved", resolution="Fixed."
            ),
        ),
        (32, lambda: commands.event_pin(actor=alice, incident_id=pk, seq=5)),
        (32, lambda: commands.event_pin(actor=alice, incident_id=pk, seq=3)),
    ]
    for minutes, step in steps:
        at(opened + timedelta(minutes=minutes))
        step()
    monkeypatch.undo()
    return incident


def test_pictures_of_the_overview_and_the_postmortem(
    review_scene: Incident,
    browser: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect

    out = DOCS if os.environ.get("TAKE_SCREENSHOTS") == "1" else tmp_path
    out.mkdir(parents=True, exist_ok=True)
    with DaphneServer() as server:
        page = signed_in_page(browser, server, "alice")
        page.goto(f"{server.url}/overview")
        expect(page.locator("svg.chart")).to_have_count(3)
        expect(page.locator(".list-meta")).to_contain_text("41 incidents opened")
        page.screenshot(path=str(out / "overview-desktop.png"), full_page=True)

        page.goto(f"{server.url}/incidents/{review_scene.pk}/postmortem")
        expect(page.locator("h1")).to_contain_text("Postmortem")
        expect(page.locator("tr.is-pinned")).to_have_count(4)  # two key moments, each also in the timeline
        page.screenshot(path=str(out / "postmortem-desktop.png"), full_page=True)

        page.goto(f"{server.url}/incidents/{review_scene.pk}/")
        expect(page.locator("#live-indicator")).to_have_text("● live")
        expect(page.locator("#live-meta")).to_contain_text("after 31 min")
        page.locator("#replay summary").click()
        page.eval_on_selector(
            "#replay-seq", "s => { s.value = '7'; s.dispatchEvent(new Event('input', {bubbles: true})); }"
        )
        expect(page.locator("#replay-view")).to_contain_text("After event 7 of")
        page.screenshot(path=str(out / "room-review-desktop.png"))
        assert page.errors == []


@pytest.fixture
def some_incidents(responder: User) -> None:
    checkout = commands.incident_create(actor=responder, title="Checkout latency", severity="high").incident
    commands.incident_add_note(actor=responder, incident_id=checkout.pk, body="rolled back deploy 8812")
    commands.incident_create(actor=responder, title="Login broken", severity="critical")
    commands.incident_create(actor=responder, title="Search lag", severity="low")


def test_list_filters_apply_as_they_change_and_stay_in_the_address(
    some_incidents: None,
    responder: User,
    browser: Any,  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    with DaphneServer() as server:
        page = signed_in_page(browser, server, responder.username)
        expect(page.locator("#incident-rows tr[id]")).to_have_count(3)
        page.fill("#list-filters input[name=q]", "8812")  # a phrase in a note, not a title
        expect(page.locator("#incident-rows tr[id]")).to_have_count(1)
        expect(page.locator("#incident-rows")).to_contain_text("Checkout latency")
        expect(page.locator("#list-meta")).to_contain_text("of 1 incident")
        expect(page).to_have_url(re.compile(r"/\?.*q=8812"))
        page.fill("#list-filters input[name=q]", "")
        expect(page.locator("#incident-rows tr[id]")).to_have_count(3)
        page.click("#incident-head a:has-text('Title')")
        expect(page.locator("#incident-rows tr[id] td.title").first).to_contain_text("Checkout latency")
        page.click("#incident-head a:has-text('Title')")
        expect(page.locator("#incident-rows tr[id] td.title").first).to_contain_text("Search lag")
        expect(page.locator("#list-sort")).to_have_value("-title")
        page.select_option("#list-filters select[name=severity]", "low")  # keeps the sort
        expect(page.locator("#incident-rows tr[id]")).to_have_count(1)
        expect(page).to_have_url(re.compile(r"/\?.*severity=low.*sort=-title"))
        assert page.errors == []
