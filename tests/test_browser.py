"""The web UI in a real browser against a real daphne: two people in one incident room, live.

Debian's Chromium driven by Playwright. Without /usr/bin/chromium these tests
skip with the reason, except with CI=true, where they fail: CI must run them.

Playwright's sync API keeps an event loop running in this thread, so the ORM
(which refuses to run there) is only used before the browser starts or from a
worker thread (`in_thread`).
"""

import json
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.request import Request, urlopen

import pytest
from django.db import connections

from accounts.models import User
from incidents import commands
from incidents.models import Incident

from .conftest import PASSWORD
from .servers import DaphneServer

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
WAIT_MS = 15_000


def require_chromium() -> None:
    if CHROMIUM.exists():
        return
    message = f"{CHROMIUM} is missing: install Debian's chromium package to run the browser tests"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI=true: {message}")
    pytest.skip(message)


@pytest.fixture
def browser() -> Iterator[Any]:
    require_chromium()
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=WAIT_MS)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def in_thread(work: Callable[[], Any]) -> Any:
    """Run ORM work away from Playwright's event loop, with its own connection."""
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = work()
        except BaseException as exc:
            result["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    if "error" in result:
        raise result["error"]
    return result.get("value")


def api(server: DaphneServer, method: str, path: str, body: dict[str, Any], token: str | None = None) -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = Request(server.url + path, data=json.dumps(body).encode(), headers=headers, method=method)  # noqa: S310
    with urlopen(request, timeout=10) as response:  # noqa: S310 (our own test server)
        return json.loads(response.read() or b"null")


def token(server: DaphneServer, username: str) -> str:
    return str(api(server, "POST", "/api/auth/login", {"username": username, "password": PASSWORD})["access"])


# Collects Content-Security-Policy violations in the page (Playwright's init scripts are not subject to the CSP).
RECORD_CSP_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation",
    (e) => window.cspViolations.push(`${e.violatedDirective}: ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));
"""


def csp_violations(page: Any) -> list[str]:
    return list(page.evaluate("window.cspViolations"))


def signed_in_page(browser: Any, server: DaphneServer, username: str) -> Any:
    """A fresh browser context, signed in through the sign-in form; it records CSP violations."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.add_init_script(RECORD_CSP_VIOLATIONS)
    page = context.new_page()
    page.errors = []  # uncaught script errors; a test ends by asserting there were none
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.goto(f"{server.url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}/")
    return page


def timeline_seqs(page: Any) -> list[int]:
    return [
        int(seq) for seq in page.eval_on_selector_all("#timeline-list li", "items => items.map(i => i.dataset.seq)")
    ]


@pytest.fixture
def incident(responder: User) -> Incident:
    return commands.incident_create(actor=responder, title="Checkout latency spike", severity="high").incident


# Fixtures that touch the ORM come before `browser` in each signature: they set up in that order.


def test_two_people_in_one_room_see_each_other_and_every_change(
    responder: User, viewer: User, incident: Incident, browser: Any
) -> None:
    from playwright.sync_api import expect

    with DaphneServer() as server:
        rae = signed_in_page(browser, server, responder.username)
        vic = signed_in_page(browser, server, viewer.username)
        room = f"{server.url}/incidents/{incident.pk}/"
        rae.goto(room)
        vic.goto(room)
        for page in (rae, vic):
            expect(page.locator("#live-indicator")).to_have_text("● live")

        # Each sees the other among the people here now.
        expect(rae.locator(f"#viewers li[data-user='{viewer.pk}']")).to_have_count(1)
        expect(vic.locator(f"#viewers li[data-user='{responder.pk}']")).to_have_count(1)
        expect(vic.locator(f"#viewers li[data-user='{responder.pk}']")).to_have_attribute("title", "rae (responder)")

        # The viewer has no controls, and says so.
        expect(vic.locator("[id^='status-to-']")).to_have_count(0)
        expect(vic.locator(".readonly-note")).to_be_visible()

        # The responder moves the status; both pages show it when the server's event arrives.
        rae.click("#status-to-identified")
        for page in (rae, vic):
            expect(page.locator("#current-status")).to_have_text("Identified")
            expect(page.locator("#timeline-list")).to_contain_text("investigating → identified")
        expect(rae.locator("#status-to-identified")).to_have_count(0)

        # The responder works in the summary; the viewer sees where.
        rae.click("#summary-edit")
        marker = vic.locator("[data-focus-section='summary'] .focus-marker")
        expect(marker).to_have_text("✎ rae editing")
        expect(vic.locator("[data-focus-section='summary']")).to_have_class("panel has-focus-marker")

        # Someone else changes the incident while the summary is being written: saving says so
        # beside the control and keeps the text; saving again replaces the latest on purpose.
        rae.fill("#summary-input", "p99 above 2 s since deploy 8812")
        access = token(server, responder.username)
        api(server, "POST", f"/api/incidents/{incident.pk}/notes", {"body": "meanwhile"}, access)
        expect(rae.locator("#timeline-list")).to_contain_text("note: meanwhile")
        rae.click("#summary-editor button[type=submit]")
        expect(rae.locator("#err-summary")).to_have_text("Someone changed this first — showing the latest.")
        expect(rae.locator("#summary-input")).to_have_value("p99 above 2 s since deploy 8812")
        rae.click("#summary-editor button[type=submit]")
        for page in (rae, vic):
            expect(page.locator("#live-summary")).to_have_text("p99 above 2 s since deploy 8812")
        expect(rae.locator("#err-summary")).to_be_empty()
        expect(rae.locator("#summary-editor")).to_be_hidden()
        rae.locator("#summary-edit").blur()
        expect(marker).to_have_text("")

        # Keyboard: `?` lists the shortcuts, `n` goes to the note box, Enter sends the note.
        rae.keyboard.press("?")
        expect(rae.locator("#shortcuts")).to_be_visible()
        rae.keyboard.press("Escape")
        rae.keyboard.press("n")
        expect(rae.locator("#note-body")).to_be_focused()
        rae.keyboard.type("paged the payments team")
        rae.keyboard.press("Enter")
        for page in (rae, vic):
            expect(page.locator("#timeline-list")).to_contain_text("note: paged the payments team")
        expect(rae.locator("#note-body")).to_have_value("")

        # A note through the REST API reaches both pages.
        api(server, "POST", f"/api/incidents/{incident.pk}/notes", {"body": "rolled back 8812"}, access)
        for page in (rae, vic):
            expect(page.locator("#timeline-list")).to_contain_text("note: rolled back 8812")

        # The server goes away: the pages say so, and a change is made meanwhile.
        server.stop()
        for page in (rae, vic):
            expect(page.locator("#live-indicator")).to_contain_text("reconnecting")
        in_thread(
            lambda: commands.incident_add_note(
                actor=responder, incident_id=incident.pk, body="made while you were away"
            )
        )
        # The server comes back on the same port: the pages rejoin with `after` and catch up.
        server.start()
        version = in_thread(lambda: Incident.objects.get(pk=incident.pk).version)
        for page in (rae, vic):
            expect(page.locator("#live-indicator")).to_have_text("● live", timeout=30_000)
            expect(page.locator("#timeline-list")).to_contain_text("note: made while you were away")
            assert timeline_seqs(page) == list(range(1, version + 1)), "each event once, in order"
        expect(vic.locator(f"#viewers li[data-user='{responder.pk}']")).to_have_count(1)
        assert rae.errors == [] and vic.errors == []
        assert csp_violations(rae) == [] and csp_violations(vic) == []


def test_list_shows_a_new_incident_and_who_is_in_each_room_without_reload(
    responder: User, viewer: User, incident: Incident, browser: Any
) -> None:
    from playwright.sync_api import expect

    with DaphneServer() as server:
        page = signed_in_page(browser, server, responder.username)
        expect(page.locator("#live-indicator")).to_have_text("● live")
        viewers = page.locator(f"#incident-row-{incident.pk} .viewers-cell")
        expect(viewers).to_have_text("—")

        # Someone opens the incident: their circle appears in its row, and goes when they leave.
        vic = signed_in_page(browser, server, viewer.username)
        vic.goto(f"{server.url}/incidents/{incident.pk}/")
        expect(viewers.locator(f"li[data-user='{viewer.pk}']")).to_have_attribute("title", "vic (viewer)")
        vic.context.close()
        expect(viewers).to_have_text("—")

        access = token(server, "rae")
        created = api(server, "POST", "/api/incidents", {"title": "Payments down", "severity": "critical"}, access)
        row = page.locator(f"#incident-row-{created['id']}")
        expect(row).to_contain_text("Payments down")
        expect(row).to_have_class("is-new")
        # Most severe first: the new critical incident is the first row.
        expect(page.locator("#incident-rows tr").first).to_have_id(f"incident-row-{created['id']}")
        api(server, "POST", f"/api/incidents/{created['id']}/status", {"status": "monitoring"}, access)
        expect(row.locator(".status")).to_have_text("Monitoring")
        assert page.errors == []
        assert csp_violations(page) == []


def test_the_content_security_policy_holds_and_the_pages_work_under_it(
    responder: User, incident: Incident, browser: Any
) -> None:
    """Issue 8.11: no inline script runs, htmx evaluates nothing, and the UI still works."""
    from playwright.sync_api import expect

    with DaphneServer() as server:
        page = signed_in_page(browser, server, responder.username)
        response = page.goto(f"{server.url}/incidents/{incident.pk}/")
        policy = response.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "unsafe-eval" not in policy
        expect(page.locator("#live-indicator")).to_have_text("● live")
        assert page.evaluate("[htmx.config.allowEval, htmx.config.allowScriptTags]") == [False, False]

        # The UI works under the policy: a change through an HTMX form arrives live.
        page.click("#status-to-identified")
        expect(page.locator("#current-status")).to_have_text("Identified")
        assert csp_violations(page) == []

        # An injected inline script (what an XSS would add) is blocked and reported.
        page.evaluate(
            "() => { const s = document.createElement('script'); s.textContent = 'window.pwned = 1';"
            " document.body.append(s); }"
        )
        page.wait_for_function("window.cspViolations.length > 0")
        assert page.evaluate("window.pwned") is None
        assert any(v.startswith("script-src") for v in csp_violations(page))

        # The other pages a person opens: the list, the API docs, the admin. (DRF's browsable API is
        # left out: a script bundled with it sets an inline event handler, which the policy blocks.)
        for path in ["/", "/api/schema/docs/", "/admin/", "/login/"]:
            page.evaluate("window.cspViolations = []")
            page.goto(f"{server.url}{path}")
            page.wait_for_load_state("networkidle")
            assert csp_violations(page) == [], path
        assert page.errors == []
