"""The incident room with two and three people at once (issue 11: items 2, 7, 8, 9 and 10).

Concurrent summary edits end in a diff and a deliberate merge or replace, and
the replaced author is told; the live indicator follows the socket; "editing"
means an open editor or a typed draft; drafts survive a reload; a phone shows
everything without sideways scrolling, with 44 px tap targets. axe-core checks
the room with the new panels open.
"""

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from accounts.models import User
from incidents import commands
from incidents.models import Incident

from .servers import DaphneServer
from .test_browser import browser, in_thread, signed_in_page  # noqa: F401 (the fixture is used by name)
from .test_browser_notify import axe_violations

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

BASE_DIR = Path(__file__).resolve().parent.parent
DOCS = BASE_DIR / "docs" / "screenshots"
PHONE = {"width": 375, "height": 812}
People = Callable[..., list[Any]]


@pytest.fixture
def team(make_user: Callable[..., User]) -> dict[str, User]:
    return {name: make_user("responder", name) for name in ("alice", "bob", "carol")}


@pytest.fixture
def incident(team: dict[str, User]) -> Incident:
    return commands.incident_create(
        actor=team["alice"], title="Checkout latency spike", severity="high", summary="p99 above 2 s"
    ).incident


@pytest.fixture
def server(incident: Incident) -> Iterator[DaphneServer]:
    """A daphne for the test (started after the data it serves is committed)."""
    with DaphneServer() as running:
        yield running


def open_room(chromium: Any, server: DaphneServer, username: str, incident: Incident) -> Any:
    page = signed_in_page(chromium, server, username)
    page.goto(f"{server.url}/incidents/{incident.pk}/")
    expect(page.locator("#live-indicator")).to_have_text("● live")
    return page


@pytest.fixture
def people(incident: Incident, server: DaphneServer, browser: Any) -> Callable[..., list[Any]]:  # noqa: F811
    """people("alice", "bob"): each signed in, in the incident's room, live."""
    return lambda *names: [open_room(browser, server, name, incident) for name in names]


def save_summary(page: Any, text: str) -> None:
    page.click("#summary-edit")
    page.fill("#summary-input", text)
    page.click("#summary-editor button[type=submit]")


def test_a_summary_conflict_shows_a_diff_and_a_replace_tells_the_replaced_author(people: People) -> None:
    alice, bob, carol = people("alice", "bob", "carol")
    # Bob and Carol both start from the same summary.
    bob.click("#summary-edit")
    carol.click("#summary-edit")
    carol.fill("#summary-input", "p99 above 2 s; payments API timing out")
    bob.fill("#summary-input", "p99 above 2 s since deploy 8812")
    bob.click("#summary-editor button[type=submit]")
    for page in (alice, bob, carol):
        expect(page.locator("#live-summary")).to_have_text("p99 above 2 s since deploy 8812")

    # Carol's save is refused: both versions side by side, the difference marked, nothing replaced yet.
    carol.click("#summary-editor button[type=submit]")
    panel = carol.locator("#summary-conflict")
    expect(panel).to_be_visible()
    expect(panel.locator("#conflict-by")).to_have_text("by bob")
    expect(panel.locator("#conflict-theirs")).to_have_text("p99 above 2 s since deploy 8812")
    expect(panel.locator("#conflict-theirs del")).to_contain_text(["since deploy 8812"])
    expect(panel.locator("#conflict-mine")).to_have_text("p99 above 2 s; payments API timing out")
    expect(panel.locator("#conflict-mine ins")).to_contain_text(["payments API timing out"])
    expect(carol.locator("#summary-input")).to_have_value("p99 above 2 s; payments API timing out")
    assert axe_violations(carol) == []

    # A plain Save again is still refused: only an explicit choice replaces.
    carol.click("#summary-editor button[type=submit]")
    expect(carol.locator("#err-summary")).to_contain_text("Someone changed this first")
    expect(panel).to_be_visible()
    expect(alice.locator("#live-summary")).to_have_text("p99 above 2 s since deploy 8812")

    carol.click("#conflict-replace")
    for page in (alice, bob, carol):
        expect(page.locator("#live-summary")).to_have_text("p99 above 2 s; payments API timing out")
    expect(panel).to_be_hidden()
    expect(carol.locator("#summary-editor")).to_be_hidden()

    # Bob, whose summary it was, is told, with what changed; Alice (who saved nothing) and Carol are not.
    notice = bob.locator("#summary-replaced")
    expect(notice).to_be_visible()
    expect(notice.locator("#replaced-text")).to_have_text("carol replaced your summary")
    bob.click("#summary-replaced summary")
    expect(notice.locator("#replaced-from del")).to_contain_text(["since deploy 8812"])
    expect(notice.locator("#replaced-to ins")).to_contain_text(["payments API timing out"])
    assert axe_violations(bob) == []
    expect(alice.locator("#summary-replaced")).to_be_hidden()
    expect(carol.locator("#summary-replaced")).to_be_hidden()
    bob.click("#replaced-dismiss")
    expect(notice).to_be_hidden()
    for page in (alice, bob, carol):
        assert page.errors == []


def test_the_replaced_author_is_told_when_their_connection_comes_back(
    incident: Incident, server: DaphneServer, people: People
) -> None:
    """Changes missed while away come with the rejoin (`incident:join` after the last seq shown), notice included."""
    bob, carol = people("bob", "carol")
    save_summary(bob, "bob's summary")
    expect(carol.locator("#live-summary")).to_have_text("bob's summary")

    # Bob's server goes away; Carol, served by another, replaces his summary meanwhile.
    with DaphneServer() as other:
        carol.goto(f"{other.url}/incidents/{incident.pk}/")  # her session cookie is for the host: she is signed in
        expect(carol.locator("#live-indicator")).to_have_text("● live")
        server.stop()
        expect(bob.locator("#live-indicator")).to_contain_text("reconnecting")
        save_summary(carol, "carol's summary")
        expect(carol.locator("#live-summary")).to_have_text("carol's summary")
        expect(bob.locator("#live-summary")).to_have_text("bob's summary")
        server.start()
    # Back: the events he missed come with the rejoin, and he is told.
    expect(bob.locator("#live-indicator")).to_have_text("● live", timeout=30_000)
    expect(bob.locator("#live-summary")).to_have_text("carol's summary")
    expect(bob.locator("#replaced-text")).to_have_text("carol changed your summary")
    assert bob.errors == [] and carol.errors == []


def test_a_merge_applies_both_edits_and_is_sent_with_the_current_version(people: People) -> None:
    bob, carol = people("bob", "carol")
    save_summary(bob, "Impact: checkout slow\nCause: unknown")
    for page in (bob, carol):
        expect(page.locator("#live-summary")).to_contain_text("Cause: unknown")
    # Both edit different lines of the same summary; Carol saves first.
    bob.click("#summary-edit")
    bob.fill("#summary-input", "Impact: checkout slow\nCause: deploy 8812")
    save_summary(carol, "Impact: 5% of checkouts time out\nCause: unknown")
    expect(bob.locator("#live-summary")).to_contain_text("5% of checkouts")
    # Carol changed the summary Bob last saved (no conflict on her side): he is told that much.
    expect(bob.locator("#replaced-text")).to_have_text("carol changed your summary")

    bob.click("#summary-editor button[type=submit]")
    expect(bob.locator("#summary-conflict")).to_be_visible()
    bob.click("#conflict-merge")
    # The editor now holds Bob's change applied to Carol's text, for him to check and edit.
    merged = "Impact: 5% of checkouts time out\nCause: deploy 8812"
    expect(bob.locator("#summary-input")).to_have_value(merged)
    expect(bob.locator("#summary-input")).to_be_focused()
    expect(bob.locator("#conflict-hint")).to_have_text("Edit the merged text below, then Save.")
    bob.locator("#summary-input").press("End")
    bob.keyboard.type(" (rolled back)")
    bob.click("#summary-editor button[type=submit]")
    for page in (bob, carol):
        expect(page.locator("#live-summary")).to_have_text(
            "Impact: 5% of checkouts time out\nCause: deploy 8812 (rolled back)", use_inner_text=True
        )
    expect(carol.locator("#replaced-text")).to_have_text("bob merged their edit into your summary")
    assert bob.errors == [] and carol.errors == []


def test_the_live_indicator_follows_the_socket_and_stale_errors_clear(
    incident: Incident, server: DaphneServer, people: People
) -> None:
    alice, bob = people("alice", "bob")
    indicator = alice.locator("#live-indicator")

    # An offline blip: the page says offline, and live again as soon as the network is back.
    alice.context.set_offline(True)
    expect(indicator).to_have_text("✕ offline — changes are not being sent")
    alice.context.set_offline(False)
    expect(indicator).to_have_text("● live", timeout=5_000)
    bob.fill("#note-body", "after the blip")
    bob.keyboard.press("Enter")
    expect(alice.locator("#timeline-list")).to_contain_text("note: after the blip")
    expect(indicator).to_have_text("● live")

    # The server goes away: a note cannot be sent and says so beside the box.
    server.stop()
    expect(indicator).to_contain_text("reconnecting")
    alice.fill("#note-body", "sent while the server was down")
    alice.keyboard.press("Enter")
    expect(alice.locator("#err-notes")).to_have_text("Could not reach the server — nothing was changed. Try again.")
    # It comes back: live again, and the error that came from the lost connection is gone.
    server.start()
    expect(indicator).to_have_text("● live", timeout=30_000)
    expect(alice.locator("#err-notes")).to_be_empty()
    expect(alice.locator("#note-body")).to_have_value("sent while the server was down")  # kept to send again
    expect(alice.locator("#note-body")).to_be_focused()
    alice.keyboard.press("Enter")
    expect(bob.locator("#timeline-list")).to_contain_text("note: sent while the server was down")
    assert alice.errors == [] and bob.errors == []


def test_editing_shows_only_with_an_open_editor_or_a_typed_draft(people: People) -> None:
    alice, bob = people("alice", "bob")
    notes = bob.locator(".note-form .focus-marker")
    severity = bob.locator("[data-focus-section='severity'] .focus-marker")
    summary = bob.locator("[data-focus-section='summary'] .focus-marker")

    # Merely focusing a select or the note box is not editing. (Typing a draft afterwards is,
    # and arrives after the focus would have, so the empty markers are checked after it shows.)
    alice.focus("#severity-select")
    alice.focus("#note-body")
    alice.keyboard.type("checking the")
    expect(notes).to_have_text("✎ alice editing")
    expect(severity).to_have_text("")
    # Blur clears it, even with the draft still there; coming back to a typed draft shows it again.
    alice.locator("#note-body").blur()
    expect(notes).to_have_text("")
    alice.focus("#note-body")
    expect(notes).to_have_text("✎ alice editing")
    # Sending empties the draft: no longer editing, though the box still has focus.
    alice.keyboard.press("Enter")
    expect(bob.locator("#timeline-list")).to_contain_text("note: checking the")
    expect(notes).to_have_text("")
    expect(alice.locator("#note-body")).to_be_focused()

    # The summary editor: open is editing; cancel clears it; save clears it without a blur.
    alice.click("#summary-edit")
    expect(summary).to_have_text("✎ alice editing")
    expect(bob.locator("[data-focus-section='summary']")).to_have_class("panel has-focus-marker")
    alice.click("#summary-cancel")
    expect(summary).to_have_text("")
    expect(alice.locator("#summary-edit")).to_be_focused()
    save_summary(alice, "p99 above 2 s since deploy 8812")
    expect(bob.locator("#live-summary")).to_have_text("p99 above 2 s since deploy 8812")
    expect(summary).to_have_text("")
    expect(alice.locator("#summary-edit")).to_be_focused()
    assert alice.errors == [] and bob.errors == []


def test_drafts_survive_a_reload_until_sent_and_leaving_an_unsaved_summary_asks(
    incident: Incident, server: DaphneServer, people: People
) -> None:
    (alice,) = people("alice")
    alice.fill("#note-body", "half a thought")
    alice.click("#summary-edit")
    alice.fill("#summary-input", "p99 above 2 s; a draft")
    asked: list[str] = []

    def answer(dialog: Any) -> None:
        asked.append(dialog.type)
        dialog.accept()

    alice.on("dialog", answer)
    alice.reload()
    expect(alice.locator("#live-indicator")).to_have_text("● live")
    assert asked == ["beforeunload"], "leaving with an unsaved summary asks first"
    expect(alice.locator("#note-body")).to_have_value("half a thought")
    expect(alice.locator("#summary-editor")).to_be_visible()
    expect(alice.locator("#summary-input")).to_have_value("p99 above 2 s; a draft")

    # Drafts are per incident: another incident's room starts empty.
    other = in_thread(
        lambda: commands.incident_create(actor=incident.created_by, title="Other", severity="low").incident
    )
    alice.goto(f"{server.url}/incidents/{other.pk}/")
    expect(alice.locator("#live-indicator")).to_have_text("● live")
    expect(alice.locator("#note-body")).to_have_value("")
    expect(alice.locator("#summary-editor")).to_be_hidden()
    assert asked == ["beforeunload", "beforeunload"]

    # Sent drafts are gone: after sending both, a reload asks nothing and shows empty boxes.
    alice.goto(f"{server.url}/incidents/{incident.pk}/")
    expect(alice.locator("#note-body")).to_have_value("half a thought")
    alice.click("#summary-editor button[type=submit]")
    expect(alice.locator("#live-summary")).to_have_text("p99 above 2 s; a draft")
    alice.focus("#note-body")
    alice.keyboard.press("Enter")
    expect(alice.locator("#timeline-list")).to_contain_text("note: half a thought")
    alice.reload()
    expect(alice.locator("#live-indicator")).to_have_text("● live")
    expect(alice.locator("#note-body")).to_have_value("")
    expect(alice.locator("#summary-editor")).to_be_hidden()
    assert asked == ["beforeunload", "beforeunload"]
    assert alice.errors == []


TAP_TARGETS = """() => {
  const small = [];
  for (const el of document.querySelectorAll(
      'button, a.button, .brand, .back, nav a, input:not([type=hidden]), select, textarea, summary')) {
    const box = el.getBoundingClientRect();
    if (!box.width || !box.height || getComputedStyle(el).visibility === 'hidden') continue;
    // A checkbox's target is its label too.
    const label = el.type === 'checkbox' && el.labels[0] ? el.labels[0].getBoundingClientRect() : box;
    if (Math.max(box.height, label.height) < 44 || Math.max(box.width, label.width) < 44)
      small.push(`${el.tagName}#${el.id}.${el.className} ${Math.round(box.width)}x${Math.round(box.height)}`);
  }
  return small;
}"""


def test_a_phone_shows_the_room_and_list_without_sideways_scroll(
    team: dict[str, User],
    incident: Incident,
    server: DaphneServer,
    browser: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    out = DOCS if os.environ.get("TAKE_SCREENSHOTS") == "1" else tmp_path
    out.mkdir(parents=True, exist_ok=True)
    alice_user = team["alice"]

    def long_incident() -> None:
        commands.incident_update(actor=alice_user, incident_id=incident.pk, commander=alice_user)
        commands.action_item_add(actor=alice_user, incident_id=incident.pk, title="add alert", owner=team["bob"])
        for n in range(60):
            commands.incident_add_note(actor=alice_user, incident_id=incident.pk, body=f"observation {n}: p99 high")

    in_thread(long_incident)
    bob = open_room(browser, server, "bob", incident)
    bob.fill("#note-body", "drafting")  # bob is editing the notes: the phone shows it
    page = signed_in_page(browser, server, "alice")
    page.set_viewport_size(PHONE)
    page.emulate_media(reduced_motion="reduce")

    expect(page.locator("#live-indicator")).to_have_text("● live")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], "list: no sideways scroll"
    brand = page.locator(".brand")
    assert brand.evaluate("el => el.getClientRects().length") == 1
    assert brand.evaluate("el => el.getBoundingClientRect().height") < 2 * 24, "the brand is on one line"
    assert page.evaluate(TAP_TARGETS) == []
    page.screenshot(path=str(out / "list-phone-375.png"), full_page=True)

    page.goto(f"{server.url}/incidents/{incident.pk}/")
    expect(page.locator("#live-indicator")).to_have_text("● live")
    expect(page.locator(".note-form .focus-marker")).to_have_text("✎ bob editing")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], "room: no sideways scroll"
    assert page.evaluate(TAP_TARGETS) == []
    # The composer is at the bottom of the screen at the top of a long page, and at its end.
    composer = page.locator(".note-form")
    for where in ("0", "document.documentElement.scrollHeight"):
        page.evaluate(f"window.scrollTo(0, {where})")
        box = composer.bounding_box()
        assert box is not None and abs(box["y"] + box["height"] - PHONE["height"]) <= 1, box
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(out / "room-phone-375.png"))
    # Reduced motion: new events arrive without the highlight's animation.
    assert page.evaluate("parseFloat(getComputedStyle(document.querySelector('.spinner')).animationDuration) < 0.001")
    assert axe_violations(page) == []
    assert page.errors == [] and bob.errors == []


def test_the_composer_stays_in_view_on_a_long_incident_on_a_laptop(incident: Incident, people: People) -> None:
    in_thread(
        lambda: [
            commands.incident_add_note(actor=incident.created_by, incident_id=incident.pk, body=f"note {n}\nline two")
            for n in range(80)
        ]
    )
    (page,) = people("alice")
    for where in ("0", "document.documentElement.scrollHeight"):
        page.evaluate(f"window.scrollTo(0, {where})")
        expect(page.locator("#note-body")).to_be_in_viewport()
    page.keyboard.press("n")
    expect(page.locator("#note-body")).to_be_focused()
    assert page.errors == []
