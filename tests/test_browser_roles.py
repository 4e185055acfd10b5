"""Issue 11 in real browsers: incident roles that never go to a viewer, a deliberate resolve, and renaming.

Two people (a responder and an admin) in one room, a viewer in the list of
accounts; each change shows on the other person's page when the server's
event arrives. Reuses tests/test_browser.py's browser, server and sign-in.
"""

from typing import Any

import pytest

from accounts.models import User
from incidents import commands
from incidents.models import Incident

from .servers import DaphneServer
from .test_browser import browser, csp_violations, in_thread, signed_in_page  # noqa: F401 (the browser fixture)
from .test_browser_notify import axe_violations

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def offered(page: Any, select: str) -> list[str]:
    return list(page.eval_on_selector_all(f"{select} option", "options => options.map(o => o.textContent.trim())"))


def in_the_room(browser: Any, server: DaphneServer, incident: Incident, *people: User) -> list[Any]:  # noqa: F811
    """A signed-in page per person, each in the incident's room with its socket live."""
    from playwright.sync_api import expect

    pages = [signed_in_page(browser, server, person.username) for person in people]
    for page in pages:
        page.goto(f"{server.url}/incidents/{incident.pk}/")
        expect(page.locator("#live-indicator")).to_have_text("● live")
    return pages


@pytest.fixture
def incident(responder: User, admin: User) -> Incident:
    incident = commands.incident_create(actor=responder, title="Checkout latency spike", severity="high").incident
    commands.action_item_add(actor=responder, incident_id=incident.pk, title="Add a p99 latency alert", owner=admin)
    done = commands.action_item_add(actor=responder, incident_id=incident.pk, title="Roll back 8812").item
    assert done is not None
    commands.action_item_update(actor=responder, incident_id=incident.pk, item_id=done.pk, done=True)
    return incident


def test_a_viewer_is_never_offered_a_role_and_a_forged_choice_is_refused(
    responder: User,
    admin: User,
    viewer: User,
    incident: Incident,
    browser: Any,  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    with DaphneServer() as server:
        rae, ada = in_the_room(browser, server, incident, responder, admin)
        for page in (rae, ada):
            # The declarer commands from the start.
            expect(page.locator("#live-meta")).to_contain_text("Commander: rae")

        # Only responders and admins are offered: for each role, a new item and an existing item.
        for select in ("#commander-select", "#comms_lead-select", "#scribe-select"):
            assert offered(rae, select) == ["none", "ada", "rae"], select
        for select in ("#new-item-owner", "[id^='item-owner-']"):
            assert offered(rae, select) == ["no owner", "ada", "rae"] * (1 if select == "#new-item-owner" else 2)

        # A responder names the communications lead: both pages show it in the header.
        rae.select_option("#comms_lead-select", label="ada")
        for page in (rae, ada):
            expect(page.locator("#live-meta")).to_contain_text("Comms lead: ada")
            expect(page.locator("#timeline-list")).to_contain_text("made ada communications lead")
        version = in_thread(lambda: Incident.objects.get(pk=incident.pk).version)

        # A forged choice (the viewer's id put into the page) is refused by the server, in words, and nothing changes.
        rae.eval_on_selector("#scribe-select", f"s => {{ s.options[1].value = '{viewer.pk}'; }}")
        rae.select_option("#scribe-select", index=1)
        expect(rae.locator("#err-people")).to_contain_text("Only responders and admins can be the scribe")
        expect(rae.locator("#err-people")).to_contain_text("vic is a viewer")
        assert in_thread(lambda: Incident.objects.get(pk=incident.pk).version) == version
        assert in_thread(lambda: Incident.objects.get(pk=incident.pk).scribe_id) is None
        expect(ada.locator("#live-meta")).not_to_contain_text("Scribe")
        assert rae.errors == [] and ada.errors == []
        assert csp_violations(rae) == [] and csp_violations(ada) == []


def test_resolve_asks_for_a_note_shows_open_items_and_the_other_page_turns_read_only(
    responder: User,
    admin: User,
    incident: Incident,
    browser: Any,  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    with DaphneServer() as server:
        rae, ada = in_the_room(browser, server, incident, responder, admin)

        # Renaming: the other page's title and timeline follow.
        rae.click("#title-edit")
        expect(rae.locator("#title-input")).to_have_value("Checkout latency spike")
        rae.fill("#title-input", "Checkout p99 above 2 s")
        rae.click("#title-editor button[type=submit]")
        expect(rae.locator("#title-editor")).to_be_hidden()
        for page in (rae, ada):
            expect(page.locator("#live-title")).to_have_text(f"#{incident.pk} Checkout p99 above 2 s")
            expect(page.locator("#timeline-list")).to_contain_text("renamed it")

        # Resolve opens a dialog: the open item is listed, the done one is not, and a note is required.
        rae.click("#status-to-resolved")
        dialog = rae.locator("#resolve-dialog")
        expect(dialog).to_be_visible()
        expect(rae.locator("#resolution-input")).to_be_focused()
        expect(dialog).to_contain_text("1 action item still open")
        expect(dialog).to_contain_text("Add a p99 latency alert")
        expect(dialog).not_to_contain_text("Roll back 8812")
        assert axe_violations(rae) == []  # the open dialog too
        # A blank note (the browser's own check taken away) is refused by the server, beside the box.
        rae.eval_on_selector("#resolution-input", "box => box.removeAttribute('required')")
        rae.fill("#resolution-input", "   ")
        rae.click("#resolve-confirm")
        expect(rae.locator("#err-resolve")).to_contain_text("Resolution")
        expect(dialog).to_be_visible()
        assert in_thread(lambda: Incident.objects.get(pk=incident.pk).status) == "investigating"
        # Cancel leaves it open; the real note resolves it.
        rae.click("#resolve-cancel")
        expect(dialog).to_be_hidden()
        rae.click("#status-to-resolved")
        rae.fill("#resolution-input", "Rolled back 8812; p99 under 300 ms.")
        rae.click("#resolve-confirm")
        expect(dialog).to_be_hidden()

        # Both pages show it resolved and read-only, live; the note is in the timeline.
        for page in (rae, ada):
            expect(page.locator("#current-status")).to_have_text("Resolved")
            expect(page.locator("#timeline-list")).to_contain_text("resolved: Rolled back 8812; p99 under 300 ms.")
            expect(page.locator("#resolved-note")).to_contain_text("read-only until it is reopened")
            expect(page.locator("#severity-select")).to_have_count(0)
            expect(page.locator("#commander-select")).to_have_count(0)
            expect(page.locator("[id^='item-done-']")).to_have_count(0)
            for hidden in ("#summary-edit", "#title-edit", ".add-item"):
                expect(page.locator(hidden)).to_be_hidden()
            expect(page.locator("#note-body")).to_be_visible()
        assert axe_violations(ada) == []  # a resolved room, read-only

        # The other person reopens it: both pages are editable again.
        ada.click("#status-to-investigating")
        for page in (rae, ada):
            expect(page.locator("#current-status")).to_have_text("Investigating")
            expect(page.locator("#severity-select")).to_be_visible()
            expect(page.locator("#summary-edit")).to_be_visible()
        assert rae.errors == [] and ada.errors == []
        assert csp_violations(rae) == [] and csp_violations(ada) == []
