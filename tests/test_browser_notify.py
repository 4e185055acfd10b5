"""Status updates and notifications in real browsers, two and three people at once (issue 11, items 5 and 6).

Reuses tests/test_browser.py's fixtures (Debian's Chromium via Playwright, a real daphne) and checks
each page with axe-core, as the other browser tests' pages are.
"""

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone

from accounts.models import User
from incidents import commands
from incidents.models import Incident

from .servers import DaphneServer
from .test_browser import api, browser, csp_violations, in_thread, signed_in_page, token  # noqa: F401 (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

AXE = Path(settings.NODE_MODULES) / "axe-core" / "axe.min.js"


def axe_violations(page: Any) -> list[str]:
    """axe-core's WCAG 2 A/AA violations on the page as it is now (evaluated, so the CSP does not apply)."""
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: run npm install")
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text())
    return list(
        page.evaluate(
            """axe.run(document, {runOnly: ['wcag2a', 'wcag2aa']}).then(r => r.violations.map(
                 v => `${v.id}: ${v.nodes.map(n => n.target.join(' ')).join(', ')}`))"""
        )
    )


@pytest.fixture
def bea(make_user: Any) -> User:
    return make_user("responder", "bea")


@pytest.fixture
def overdue_incident(responder: User) -> Incident:
    """Opened 30 minutes ago with an update due every 10 minutes, and none posted: 20 minutes overdue."""
    incident = commands.incident_create(actor=responder, title="Checkout latency spike", severity="high").incident
    commands.incident_update(actor=responder, incident_id=incident.pk, status_update_cadence=10)
    Incident.objects.filter(pk=incident.pk).update(created_at=timezone.now() - timedelta(minutes=30))
    return incident


def test_a_status_update_reaches_the_other_room_and_the_list_live_and_clears_the_overdue_nudge(
    responder: User,
    bea: User,
    viewer: User,
    overdue_incident: Incident,
    browser: Any,  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    incident = overdue_incident
    with DaphneServer() as server:
        rae = signed_in_page(browser, server, responder.username)
        other = signed_in_page(browser, server, bea.username)
        vic = signed_in_page(browser, server, viewer.username)  # on the list
        room = f"{server.url}/incidents/{incident.pk}/"
        rae.goto(room)
        other.goto(room)
        for page in (rae, other, vic):
            expect(page.locator("#live-indicator")).to_have_text("● live")

        # The room nudges, in words, and the list marks the row.
        for page in (rae, other):
            expect(page.locator("#update-due")).to_be_visible()
            expect(page.locator("#update-due")).to_contain_text("Status update overdue by 2")  # 20 min (or 21)
            expect(page.locator("#update-due")).to_have_attribute("role", "status")
        row = vic.locator(f"#incident-row-{incident.pk}")
        expect(row.locator(".overdue-mark")).to_be_visible()
        expect(row.locator(".overdue-mark")).to_have_text("update overdue")
        assert axe_violations(rae) == []
        assert axe_violations(vic) == []

        # Rae posts an update: both rooms show it, the nudge goes, and the list row follows.
        rae.fill("#status-update-body", "We found the cause and are rolling back. See https://status.example.com/1")
        rae.click(".status-update-form button[type=submit]")
        for page in (rae, other):
            latest = page.locator("#live-status-update .update-body")
            expect(latest).to_contain_text("We found the cause and are rolling back.")
            expect(latest.locator("a")).to_have_attribute("href", "https://status.example.com/1")
            expect(page.locator("#update-due")).to_be_hidden()
            expect(page.locator("#timeline-list")).to_contain_text("status update: We found the cause")
        expect(rae.locator("#status-update-body")).to_have_value("")
        expect(row.locator(".latest-update-line")).to_contain_text("We found the cause")
        expect(row.locator(".overdue-mark")).to_be_hidden()

        # Bea changes the cadence from the room: it is audited, and both rooms show the choice.
        other.select_option("#cadence-select", "30")
        expect(rae.locator("#timeline-list")).to_contain_text("status updates every 30 min")
        expect(rae.locator("#cadence-select")).to_have_value("30")
        assert axe_violations(rae) == []
        for page in (rae, other, vic):
            assert page.errors == []
            assert csp_violations(page) == []


# Stands in for the browser's Notification API: records what would be shown, and grants permission when asked.
FAKE_NOTIFICATIONS = """
window.shownNotifications = [];
window.Notification = class {
  static permission = "default";
  static requestPermission() { window.Notification.permission = "granted"; return Promise.resolve("granted"); }
  constructor(title, options) { window.shownNotifications.push({title, body: (options || {}).body}); }
  addEventListener() {}
};
"""


def test_a_mention_and_an_assignment_light_the_bell_and_the_tab_title_live(
    responder: User,
    bea: User,
    viewer: User,
    browser: Any,  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    incident = in_thread(
        lambda: commands.incident_create(actor=responder, title="Payments down", severity="critical").incident
    )
    with DaphneServer() as server:
        rae = signed_in_page(browser, server, responder.username)
        other = signed_in_page(browser, server, bea.username)
        vic = signed_in_page(browser, server, viewer.username)
        vic.context.add_init_script(FAKE_NOTIFICATIONS)
        rae.goto(f"{server.url}/incidents/{incident.pk}/")
        other.goto(f"{server.url}/overview")  # neither room nor list: the bell keeps its own socket
        vic.reload()  # the list, with the stand-in Notification API
        for page in (rae, vic):
            expect(page.locator("#live-indicator")).to_have_text("● live")
        for page in (other, vic):
            expect(page.locator("#bell-count")).to_be_hidden()
            expect(page.locator("#bell-button")).to_have_attribute("aria-label", "Notifications, none unread")
        other_title, vic_title = other.title(), vic.title()

        # Vic allows browser notifications from the bell's menu (a user gesture).
        vic.click("#bell-button")
        vic.click("#bell-permission")
        expect(vic.locator("#bell-permission")).to_be_hidden()
        vic.keyboard.press("Escape")
        expect(vic.locator("#bell-menu")).to_be_hidden()

        # Rae mentions both in a note: each bell and tab title count it, live.
        rae.fill("#note-body", "@bea @vic please look at https://grafana.example.com/d/1")
        rae.click(".note-form button[type=submit]")
        mention = rae.locator("#timeline-list .mention").first
        expect(mention).to_have_text("@bea")
        for page, title in ((other, other_title), (vic, vic_title)):
            expect(page.locator("#bell-count")).to_have_text("1")
            expect(page.locator("#bell-button")).to_have_attribute("aria-label", "Notifications, 1 unread")
            page.wait_for_function("expected => document.title === expected", arg=f"(1) {title}")
        vic.wait_for_function("window.shownNotifications.length === 1")
        shown = vic.evaluate("window.shownNotifications[0]")
        assert shown["title"] == f"rae mentioned you in #{incident.pk} Payments down"

        # An assignment counts too.
        access = token(server, responder.username)
        api(server, "PATCH", f"/api/incidents/{incident.pk}", {"assignees": [bea.pk]}, access)
        expect(other.locator("#bell-count")).to_have_text("2")
        other.wait_for_function("expected => document.title === expected", arg=f"(2) {other_title}")

        # Bea opens the bell and the mention: it takes her to the incident, at the event, and is read.
        other.click("#bell-button")
        items = other.locator("#bell-list a[data-notification]")
        expect(items).to_have_count(2)
        expect(items.first).to_contain_text(f"rae made you an assignee of #{incident.pk} Payments down")
        expect(items.nth(1)).to_contain_text("rae mentioned you in")
        expect(items.nth(1)).to_contain_text("@bea @vic please look")
        assert axe_violations(other) == []
        items.nth(1).click()
        other.wait_for_url(f"{server.url}/incidents/{incident.pk}/#event-*")
        expect(other.locator("#live-indicator")).to_have_text("● live")
        expect(other.locator("#bell-count")).to_have_text("1")
        expect(other.locator("#timeline-list .mention").first).to_have_text("@bea")

        # Mark all read: the count and the title clear.
        other.click("#bell-button")
        other.click("#bell-read-all")
        expect(other.locator("#bell-count")).to_be_hidden()
        other.wait_for_function("() => !document.title.startsWith('(')")
        assert axe_violations(vic) == []
        for page in (rae, other, vic):
            assert page.errors == []
            assert csp_violations(page) == []
