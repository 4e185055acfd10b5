"""Pictures of the list and the incident room at desktop and phone widths, and the phone-width promise.

Always checks that nothing scrolls sideways at 390 px. With TAKE_SCREENSHOTS=1
it also writes the PNGs to docs/screenshots/ (otherwise to a temporary folder):

    TAKE_SCREENSHOTS=1 .venv/bin/pytest tests/test_browser_screenshots.py
"""

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from accounts.models import User
from incidents import commands
from incidents.models import Incident

from .scenes import checkout_latency_spike
from .servers import DaphneServer
from .test_browser import browser, signed_in_page  # noqa: F401 (the fixture is used by name)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SIZES = {
    "desktop": ({"width": 1280, "height": 800}, "light"),
    "phone": ({"width": 390, "height": 844}, "light"),
    "desktop-dark": ({"width": 1280, "height": 800}, "dark"),
}
DOCS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


@pytest.fixture
def scene(make_user: Callable[..., User]) -> dict[str, Any]:
    """A believable afternoon: one busy incident and a few others."""
    alice = make_user("responder", "alice", first_name="Alice", last_name="Kim")
    bob = make_user("responder", "bob", first_name="Bob", last_name="Lee")
    carol = make_user("responder", "carol")
    dave = make_user("responder", "dave")
    make_user("viewer", "vic")
    incident = checkout_latency_spike(alice)
    pk = incident.pk
    commands.incident_update(actor=alice, incident_id=pk, commander=alice)
    commands.incident_change_status(actor=alice, incident_id=pk, status="identified")
    commands.incident_add_note(actor=bob, incident_id=pk, body="rolled back 8812, watching p99")
    commands.incident_update(actor=bob, incident_id=pk, assignees=[carol, dave])
    first = commands.action_item_add(actor=bob, incident_id=pk, title="roll back 8812", owner=bob).item
    assert first is not None
    commands.action_item_update(actor=bob, incident_id=pk, item_id=first.pk, done=True)
    commands.action_item_add(actor=carol, incident_id=pk, title="add latency alert", owner=carol)
    commands.incident_add_note(actor=carol, incident_id=pk, body="p99 back under 400 ms after the rollback")
    for title, severity, status in [
        ("Database replica lag on db-3", "critical", "investigating"),
        ("Search results stale for EU users", "medium", "monitoring"),
        ("Status page certificate expires in 5 days", "low", "investigating"),
        ("Login errors for SSO customers", "high", "resolved"),
    ]:
        other = commands.incident_create(actor=bob, title=title, severity=severity).incident
        if status != "investigating":
            resolution = "Renewed the SSO signing certificate." if status == "resolved" else None
            commands.incident_change_status(actor=bob, incident_id=other.pk, status=status, resolution=resolution)
    return {"incident": incident}


def test_pages_fit_desktop_and_phone(scene: dict[str, Any], browser: Any, tmp_path: Path) -> None:  # noqa: F811
    from playwright.sync_api import expect

    out = DOCS if os.environ.get("TAKE_SCREENSHOTS") == "1" else tmp_path
    out.mkdir(parents=True, exist_ok=True)
    incident: Incident = scene["incident"]
    with DaphneServer() as server:
        # Others in the room, one of them working in the summary.
        bob = signed_in_page(browser, server, "bob")
        bob.goto(f"{server.url}/incidents/{incident.pk}/")
        vic = signed_in_page(browser, server, "vic")
        vic.goto(f"{server.url}/incidents/{incident.pk}/")
        for page in (bob, vic):
            expect(page.locator("#live-indicator")).to_have_text("● live")
        bob.click("#summary-edit")

        for name, (size, scheme) in SIZES.items():
            page = signed_in_page(browser, server, "alice")
            page.set_viewport_size(size)
            page.emulate_media(color_scheme=scheme)
            page.goto(f"{server.url}/")
            expect(page.locator("#live-indicator")).to_have_text("● live")
            expect(page.locator(f"#incident-row-{incident.pk} .viewers li")).to_have_count(2)  # bob, vic
            assert page.evaluate("document.documentElement.scrollWidth") <= size["width"], "no sideways scroll"
            if scheme == "light":
                page.screenshot(path=str(out / f"list-{name}.png"), full_page=name == "phone")

            page.goto(f"{server.url}/incidents/{incident.pk}/")
            expect(page.locator("#live-indicator")).to_have_text("● live")
            expect(page.locator("#viewers li")).to_have_count(3)
            expect(page.locator("[data-focus-section='summary'] .focus-marker")).to_have_text("✎ bob editing")
            assert page.evaluate("document.documentElement.scrollWidth") <= size["width"], "no sideways scroll"
            page.screenshot(path=str(out / f"room-{name}.png"), full_page=name == "phone")
            assert page.errors == []
            page.context.close()
