"""The web pages through Django's test client: who sees what, what a post changes, what an error says."""

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import User
from incidents import commands
from incidents.models import ActionItem, AuditEvent, Incident

from .conftest import PASSWORD

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


def make_incident(actor: User, title: str = "Checkout latency spike", severity: str = "high", **extra: Any) -> Incident:
    return commands.incident_create(actor=actor, title=title, severity=severity, **extra).incident


def client_for(user: User | None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def snapshot(incident: Incident) -> tuple[int, int]:
    fresh = Incident.objects.get(pk=incident.pk)
    return fresh.version, AuditEvent.objects.filter(incident=incident).count()


# --- Signing in, out, registering --------------------------------------------------


def test_anonymous_is_sent_to_sign_in(responder: User) -> None:
    incident = make_incident(responder)
    for url in (reverse("incident-list"), reverse("incident-room", args=[incident.pk])):
        response = Client().get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


def test_sign_in_with_the_form_opens_the_list(responder: User) -> None:
    client = Client()
    assert client.get(reverse("login")).status_code == 200
    response = client.post(reverse("login"), {"username": "rae", "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == reverse("incident-list")
    assert client.get(reverse("incident-list")).status_code == 200


def test_wrong_password_is_said_plainly(responder: User) -> None:
    response = Client().post(reverse("login"), {"username": "rae", "password": "nope"})
    assert response.status_code == 200
    assert "enter a correct username and password" in response.content.decode()


def test_sign_out_is_a_post(responder: User) -> None:
    client = client_for(responder)
    assert client.get(reverse("logout")).status_code == 405
    assert client.post(reverse("logout")).status_code == 302
    assert client.get(reverse("incident-list")).status_code == 302


def test_registration_makes_a_signed_in_viewer(db: None) -> None:
    client = Client()
    response = client.post(
        reverse("register"),
        {"username": "newbie", "email": "", "password1": "a-long-passphrase-9", "password2": "a-long-passphrase-9"},
    )
    assert response.status_code == 302
    user = User.objects.get(username="newbie")
    assert user.role == User.Role.VIEWER
    assert client.get(reverse("incident-list")).status_code == 200


def test_registration_errors_are_shown_beside_the_field(viewer: User) -> None:
    response = Client().post(reverse("register"), {"username": "VIC", "password1": "short", "password2": "different"})
    assert response.status_code == 400
    page = response.content.decode()
    assert "That username is taken." in page
    assert "The two passwords differ." in page
    assert User.objects.filter(username__iexact="vic").count() == 1


# --- The list ----------------------------------------------------------------------


@pytest.mark.parametrize("role", ["admin", "responder", "viewer"])
def test_list_renders_for_every_role(users: dict[str, User], role: str) -> None:
    make_incident(users["responder"], title="Disk <full> on db-3")
    page = client_for(users[role]).get(reverse("incident-list")).content.decode()
    assert "Disk &lt;full&gt; on db-3" in page
    assert 'class="badge sev-high"' in page
    assert ("New incident" in page) is (role != "viewer")


def test_list_has_a_viewers_cell_per_row_for_the_live_script_to_fill(responder: User) -> None:
    first, second = make_incident(responder, title="one"), make_incident(responder, title="two")
    page = client_for(responder).get(reverse("incident-list")).content.decode()
    assert '<th scope="col">Viewers</th>' in page
    for incident in (first, second):
        assert f'data-viewers-of="{incident.pk}"><span class="muted">—</span></td>' in page


def test_list_puts_open_first_then_most_severe(responder: User) -> None:
    low = make_incident(responder, title="low one", severity="low")
    resolved = make_incident(responder, title="resolved critical", severity="critical")
    commands.incident_change_status(actor=responder, incident_id=resolved.pk, status="resolved", resolution="Fixed.")
    critical = make_incident(responder, title="critical one", severity="critical")
    medium = make_incident(responder, title="medium one", severity="medium")
    page = client_for(responder).get(reverse("incident-list")).content.decode()
    order = [page.index(f'incident-row-{i.pk}"') for i in (critical, medium, low, resolved)]
    assert order == sorted(order)


def test_list_filters_live_in_the_url(responder: User) -> None:
    make_incident(responder, title="Checkout latency", severity="high")
    make_incident(responder, title="Checkout errors", severity="low")
    other = make_incident(responder, title="Login broken", severity="high")
    commands.incident_change_status(actor=responder, incident_id=other.pk, status="identified")
    client = client_for(responder)

    def titles(query: str) -> set[str]:
        response = client.get(reverse("incident-list") + query)
        rows = response.context["incidents"]
        return {incident.title for incident in rows}

    assert titles("?q=checkout") == {"Checkout latency", "Checkout errors"}
    assert titles("?severity=high") == {"Checkout latency", "Login broken"}
    assert titles("?status=identified") == {"Login broken"}
    assert titles("?q=checkout&severity=low") == {"Checkout errors"}
    page = client.get(reverse("incident-list") + "?q=checkout&severity=low").content.decode()
    assert 'value="checkout"' in page
    assert '<option value="low" selected>' in page


def test_list_rows_partial_is_the_table_body_with_the_same_filters(responder: User) -> None:
    make_incident(responder, title="Checkout latency")
    make_incident(responder, title="Login broken")
    response = client_for(responder).get(reverse("incident-list-rows") + "?q=login", headers=HTMX)
    page = response.content.decode()
    assert page.strip().startswith('<tbody id="incident-rows">')
    assert "Login broken" in page and "Checkout latency" not in page


def test_list_query_count_does_not_grow_with_incidents(
    responder: User, make_user: Callable[..., User], django_assert_num_queries: Any
) -> None:
    client = client_for(responder)
    for n in range(3):
        incident = make_incident(responder, title=f"incident {n}")
        commands.incident_update(actor=responder, incident_id=incident.pk, commander=make_user("responder"))
    with django_assert_num_queries(4):  # session, user, the count, a page of incidents with their commanders
        client.get(reverse("incident-list"))
    for n in range(10):
        make_incident(responder, title=f"more {n}")
    with django_assert_num_queries(4):
        client.get(reverse("incident-list"))


# --- The new-incident form --------------------------------------------------------------


def test_responder_opens_an_incident_through_the_form(responder: User) -> None:
    client = client_for(responder)
    assert client.get(reverse("incident-new")).status_code == 200
    response = client.post(reverse("incident-new"), {"title": "Payments down", "severity": "critical", "summary": ""})
    incident = Incident.objects.get(title="Payments down")
    assert response.status_code == 302
    assert response["Location"] == reverse("incident-room", args=[incident.pk])
    assert incident.created_by == responder
    assert list(incident.events.values_list("type", flat=True)) == ["incident_created"]


def test_new_incident_form_shows_field_errors(responder: User) -> None:
    response = client_for(responder).post(reverse("incident-new"), {"title": "", "severity": "apocalyptic"})
    assert response.status_code == 400
    assert "This field is required." in response.content.decode()
    assert not Incident.objects.exists()


def test_viewer_cannot_open_an_incident(viewer: User) -> None:
    client = client_for(viewer)
    assert client.get(reverse("incident-new")).status_code == 403
    response = client.post(reverse("incident-new"), {"title": "Sneaky", "severity": "low"})
    assert response.status_code == 403
    assert not Incident.objects.exists()


# --- The room -------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["admin", "responder"])
def test_room_shows_controls_to_those_who_may_change(users: dict[str, User], role: str) -> None:
    incident = make_incident(users["responder"])
    page = client_for(users[role]).get(reverse("incident-room", args=[incident.pk])).content.decode()
    for status in ("identified", "monitoring", "resolved"):
        assert f'id="status-to-{status}"' in page
    assert 'id="status-to-investigating"' not in page
    assert 'id="note-body"' in page and 'id="severity-select"' in page and 'id="summary-editor"' in page
    assert "viewing read-only" not in page


def test_viewer_sees_the_room_without_controls(users: dict[str, User]) -> None:
    incident = make_incident(users["responder"], summary="p99 above 2 s")
    page = client_for(users["viewer"]).get(reverse("incident-room", args=[incident.pk])).content.decode()
    assert "You are viewing read-only" in page
    assert "p99 above 2 s" in page
    assert "hx-post" not in page
    main = page.split('<main id="main"')[1].split("</main>")[0]
    # Reading tools stay: the timeline's filter and the replay slider (GET forms) are all a viewer gets.
    for reader in ('<form class="timeline-filter"', '<form class="replay-form"'):
        before, _, rest = main.partition(reader)
        assert rest, reader
        main = before + rest.split("</form>", 1)[1]
    for control in ("<form", "<select", "<textarea", "<input", 'id="status-to-'):
        assert control not in main
    assert 'id="note-body"' not in page


def test_resolved_incident_offers_a_quiet_reopen(responder: User) -> None:
    incident = make_incident(responder)
    commands.incident_change_status(actor=responder, incident_id=incident.pk, status="resolved", resolution="Fixed.")
    page = client_for(responder).get(reverse("incident-room", args=[incident.pk])).content.decode()
    assert 'value="investigating" id="status-to-investigating" class="quiet">Reopen</button>' in page


def test_room_timeline_tells_each_event_in_its_own_words(responder: User, make_user: Callable[..., User]) -> None:
    carol = make_user("responder", "carol")
    incident = make_incident(responder)
    pk = incident.pk
    commands.incident_change_status(actor=responder, incident_id=pk, status="identified")
    commands.incident_add_note(actor=responder, incident_id=pk, body="rolled back <b>8812</b>")
    commands.incident_update(actor=responder, incident_id=pk, assignees=[carol], severity="critical")
    item = commands.action_item_add(actor=responder, incident_id=pk, title="add latency alert", owner=carol).item
    assert item is not None
    commands.action_item_update(actor=responder, incident_id=pk, item_id=item.pk, done=True)
    page = client_for(responder).get(reverse("incident-room", args=[pk])).content.decode()
    timeline = page.split('id="timeline-list"')[1]
    expected = [
        "opened it (high)",
        "investigating → identified",
        'note: <span class="body">rolled back &lt;b&gt;8812&lt;/b&gt;',
        "severity high → critical",
        "assigned carol",
        "action item added: “add latency alert” for carol",
        "ticked “add latency alert” done",
    ]
    positions = [timeline.index(text) for text in expected]
    assert positions == sorted(positions), "newest last"
    assert "<b>8812" not in page


def test_unknown_incident_is_404(responder: User) -> None:
    assert client_for(responder).get(reverse("incident-room", args=[999])).status_code == 404


def test_room_query_count_does_not_grow_with_its_contents(
    responder: User, make_user: Callable[..., User], django_assert_num_queries: Any
) -> None:
    incident = make_incident(responder)
    commands.action_item_add(actor=responder, incident_id=incident.pk, title="first", owner=responder)
    client = client_for(responder)
    url = reverse("incident-room", args=[incident.pk])
    # session, user, incident (+commander, creator), assignees, action items with their owners, events, users,
    # the pinned events, the timeline filter's actors
    with django_assert_num_queries(9):
        client.get(url)
    people = [make_user("responder") for _ in range(4)]
    commands.incident_update(actor=responder, incident_id=incident.pk, assignees=people, commander=people[0])
    for n, person in enumerate(people):
        commands.action_item_add(actor=responder, incident_id=incident.pk, title=f"item {n}", owner=person)
        commands.incident_add_note(actor=responder, incident_id=incident.pk, body=f"note {n}")
    with django_assert_num_queries(9):
        client.get(url)


def test_room_partial_brings_the_live_parts_and_only_events_after(responder: User) -> None:
    incident = make_incident(responder)
    commands.incident_add_note(actor=responder, incident_id=incident.pk, body="first")
    commands.incident_add_note(actor=responder, incident_id=incident.pk, body="second")
    url = reverse("incident-room-partial", args=[incident.pk])
    page = client_for(responder).get(url + "?after=2", headers=HTMX).content.decode()
    assert page.count('hx-swap-oob="true"') == 12
    assert 'data-seq="3"' in page and 'note: <span class="body">second</span>' in page
    assert 'data-seq="2"' not in page and 'data-seq="1"' not in page


def test_room_partial_query_count_is_pinned(responder: User, django_assert_num_queries: Any) -> None:
    incident = make_incident(responder)
    for n in range(5):
        commands.incident_add_note(actor=responder, incident_id=incident.pk, body=f"note {n}")
    client = client_for(responder)
    with django_assert_num_queries(7):
        client.get(reverse("incident-room-partial", args=[incident.pk]) + "?after=1", headers=HTMX)


# --- Posts from the room ------------------------------------------------------------------


def post(client: Client, name: str, incident: Incident, data: dict[str, Any], *args: int) -> Any:
    return client.post(reverse(name, args=[incident.pk, *args]), data, headers=HTMX)


def test_status_post_calls_the_command_and_answers_204(responder: User) -> None:
    incident = make_incident(responder)
    response = post(client_for(responder), "incident-status", incident, {"status": "identified", "version": 1})
    assert response.status_code == 204
    assert Incident.objects.get(pk=incident.pk).status == "identified"
    event = AuditEvent.objects.get(incident=incident, seq=2)
    assert (event.type, event.actor, event.data) == (
        "status_change",
        responder,
        {"from": "investigating", "to": "identified"},
    )


def test_post_without_htmx_redirects_back_to_the_room(responder: User) -> None:
    incident = make_incident(responder)
    response = client_for(responder).post(reverse("incident-status", args=[incident.pk]), {"status": "monitoring"})
    assert response.status_code == 302
    assert response["Location"] == reverse("incident-room", args=[incident.pk])


def test_stale_version_says_someone_changed_it_first(responder: User) -> None:
    incident = make_incident(responder)
    commands.incident_add_note(actor=responder, incident_id=incident.pk, body="meanwhile")
    before = snapshot(incident)
    response = post(client_for(responder), "incident-status", incident, {"status": "identified", "version": 1})
    assert response.status_code == 409
    assert "Someone changed this first — showing the latest." in response.content.decode()
    assert snapshot(incident) == before


def test_refused_transition_is_explained(responder: User) -> None:
    incident = make_incident(responder)
    commands.incident_change_status(actor=responder, incident_id=incident.pk, status="resolved", resolution="Fixed.")
    response = post(client_for(responder), "incident-status", incident, {"status": "monitoring"})
    assert response.status_code == 409
    assert "cannot move to monitoring" in response.content.decode()


def test_blank_note_is_refused_in_words(responder: User) -> None:
    incident = make_incident(responder)
    before = snapshot(incident)
    response = post(client_for(responder), "incident-note", incident, {"body": "   "})
    assert response.status_code == 400
    assert "This field is required." in response.content.decode()
    assert snapshot(incident) == before


def test_every_room_control_reaches_its_command(responder: User, make_user: Callable[..., User]) -> None:
    carol = make_user("responder", "carol")
    incident = make_incident(responder)
    client = client_for(responder)
    assert post(client, "incident-severity", incident, {"severity": "critical"}).status_code == 204
    assert post(client, "incident-commander", incident, {"commander": carol.pk}).status_code == 204
    assert post(client, "incident-summary", incident, {"summary": "p99 > 2 s", "version": 3}).status_code == 204
    assert post(client, "incident-assignee-add", incident, {"user": carol.pk}).status_code == 204
    assert post(client, "incident-assignee-add", incident, {"user": responder.pk}).status_code == 204
    assert post(client, "incident-assignee-remove", incident, {"user": carol.pk}).status_code == 204
    assert post(client, "incident-note", incident, {"body": "rolled back"}).status_code == 204
    assert post(client, "incident-action-item-add", incident, {"title": "add alert", "owner": ""}).status_code == 204
    item = ActionItem.objects.get(incident=incident)
    assert post(client, "incident-action-item-owner", incident, {"owner": carol.pk}, item.pk).status_code == 204
    assert post(client, "incident-action-item-done", incident, {"done": "on"}, item.pk).status_code == 204
    assert post(client, "incident-action-item-done", incident, {}, item.pk).status_code == 204

    fresh = Incident.objects.get(pk=incident.pk)
    assert (fresh.severity, fresh.commander, fresh.summary) == ("critical", carol, "p99 > 2 s")
    assert list(fresh.assignees.all()) == [responder]
    item.refresh_from_db()
    assert (item.owner, item.done) == (carol, False)
    types = list(AuditEvent.objects.filter(incident=incident).order_by("seq").values_list("type", flat=True))
    assert types == [
        "incident_created",
        "severity_change",
        "assignment",
        "summary_change",
        "assignment",
        "assignment",
        "assignment",
        "note",
        "action_item_added",
        "action_item_updated",
        "action_item_updated",
        "action_item_updated",
    ]


ROOM_POSTS = [
    ("incident-status", {"status": "identified"}),
    ("incident-severity", {"severity": "critical"}),
    ("incident-commander", {"commander": ""}),
    ("incident-summary", {"summary": "forged"}),
    ("incident-assignee-add", {"user": "1"}),
    ("incident-assignee-remove", {"user": "1"}),
    ("incident-note", {"body": "forged"}),
    ("incident-action-item-add", {"title": "forged"}),
    ("incident-action-item-done", {"done": "on"}),
    ("incident-action-item-owner", {"owner": ""}),
]


@pytest.mark.parametrize(("name", "data"), ROOM_POSTS, ids=[name for name, _ in ROOM_POSTS])
def test_viewer_forged_post_is_403_and_changes_nothing(users: dict[str, User], name: str, data: dict[str, Any]) -> None:
    incident = make_incident(users["responder"])
    item = commands.action_item_add(actor=users["responder"], incident_id=incident.pk, title="an item").item
    assert item is not None
    before = snapshot(incident)
    args = [item.pk] if "action-item-" in name and name != "incident-action-item-add" else []
    response = post(client_for(users["viewer"]), name, incident, data, *args)
    assert response.status_code == 403
    assert "viewing read-only" in response.content.decode()
    assert snapshot(incident) == before


def test_anonymous_post_changes_nothing(responder: User) -> None:
    incident = make_incident(responder)
    response = Client().post(reverse("incident-status", args=[incident.pk]), {"status": "identified"})
    assert response.status_code == 302
    assert snapshot(incident) == (1, 1)


def test_posts_need_the_csrf_token(responder: User) -> None:
    incident = make_incident(responder)
    client = Client(enforce_csrf_checks=True)
    client.force_login(responder)
    response = client.post(reverse("incident-note", args=[incident.pk]), {"body": "no token"}, headers=HTMX)
    assert response.status_code == 403
    assert snapshot(incident) == (1, 1)
