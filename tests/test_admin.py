"""The Django admin: query-efficient pages, staff only, and every change through the commands."""

from collections.abc import Callable
from html.parser import HTMLParser
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from pytest_django import DjangoAssertNumQueries

from accounts.models import User
from incidents import commands
from incidents.models import AuditEvent, Incident

pytestmark = pytest.mark.django_db


class FormFields(HTMLParser):
    """What a browser would submit for the page's main form: inputs, selected options, textareas."""

    def __init__(self) -> None:
        super().__init__()
        self.data: dict[str, list[str]] = {}
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        name = a.get("name")
        if tag == "input" and name and a.get("type") not in ("submit", "button", "checkbox", "file"):
            self.data.setdefault(name, []).append(a.get("value") or "")
        elif tag == "input" and name and a.get("type") == "checkbox" and "checked" in a:
            self.data.setdefault(name, []).append(a.get("value") or "on")
        elif tag == "select" and name:
            self._select = name
            self.data.setdefault(name, [])
        elif tag == "option" and self._select and "selected" in a:
            self.data[self._select].append(a.get("value") or "")
        elif tag == "textarea" and name:
            self._textarea = name
            self.data[name] = [""]

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.data[self._textarea][0] += data


def form_data(client: Client, url: str) -> dict[str, Any]:
    """GET the page and return its form as the browser would post it back unchanged."""
    response = client.get(url)
    assert response.status_code == 200
    parser = FormFields()
    parser.feed(response.content.decode())
    data: dict[str, Any] = dict(parser.data)
    data.pop("csrfmiddlewaretoken", None)
    # Django renders a textarea's value after a newline it then ignores on parsing.
    return {name: values[0].removeprefix("\n") if name == "summary" else values for name, values in data.items()}


def change_url(incident: Incident) -> str:
    return reverse("admin:incidents_incident_change", args=[incident.pk])


def make_incident(actor: User, **extra: Any) -> Incident:
    return commands.incident_create(actor=actor, title="Disk full on db-3", severity="high", **extra).incident


def events_of(incident: Incident) -> list[tuple[int, str]]:
    return list(AuditEvent.objects.filter(incident=incident).order_by("seq").values_list("seq", "type"))


@pytest.fixture
def staff(client: Client, admin: User) -> Client:
    client.force_login(admin)
    return client


# --- Pages load, with a fixed number of queries ----------------------------------


@pytest.mark.parametrize("count", [3, 30])
def test_incident_changelist_query_count_does_not_grow_with_rows(
    staff: Client, admin: User, responder: User, count: int, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    for n in range(count):
        incident = make_incident(responder if n % 2 else admin)
        commands.incident_update(actor=admin, incident_id=incident.pk, commander=responder)
    url = reverse("admin:incidents_incident_changelist")
    staff.get(url)  # warm the per-process caches (content types), so the count is the steady state
    with django_assert_num_queries(5):
        response = staff.get(url)
    assert response.status_code == 200
    assert response.context["cl"].result_count == count


def test_incident_changelist_filters_and_searches(staff: Client, responder: User) -> None:
    make_incident(responder)
    commands.incident_create(actor=responder, title="Payments 503", severity="critical")
    url = reverse("admin:incidents_incident_changelist")
    assert [i.title for i in staff.get(url, {"severity": "critical"}).context["cl"].result_list] == ["Payments 503"]
    assert [i.title for i in staff.get(url, {"q": "disk"}).context["cl"].result_list] == ["Disk full on db-3"]
    assert staff.get(url, {"status": "resolved"}).context["cl"].result_count == 0


@pytest.mark.parametrize("count", [2, 20])
def test_incident_change_page_query_count_does_not_grow_with_timeline(
    staff: Client, responder: User, count: int, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    incident = make_incident(responder)
    commands.incident_update(actor=responder, incident_id=incident.pk, commander=responder, assignees=[responder])
    for n in range(count):
        commands.action_item_add(actor=responder, incident_id=incident.pk, title=f"item {n}", owner=responder)
        commands.incident_add_note(actor=responder, incident_id=incident.pk, body=f"note {n}")
    staff.get(change_url(incident))  # warm the per-process caches (content types)
    with django_assert_num_queries(9):  # 8, and the events the durations are computed from
        response = staff.get(change_url(incident))
    assert response.status_code == 200
    assert f"note {count - 1}" in response.content.decode()


def test_incident_change_page_shows_the_durations_from_the_timeline(staff: Client, responder: User) -> None:
    incident = make_incident(responder)
    commands.incident_change_status(actor=responder, incident_id=incident.pk, status="resolved", resolution="Fixed.")
    page = staff.get(change_url(incident)).content.decode()
    assert "Durations (computed from the timeline)" in page
    assert "to resolve 0 s" in page and "reopens 0" in page and "responders rae" in page


def test_incident_list_shows_the_time_to_resolve(staff: Client, responder: User) -> None:
    incident = make_incident(responder)
    commands.incident_change_status(actor=responder, incident_id=incident.pk, status="resolved", resolution="Fixed.")
    page = staff.get(reverse("admin:incidents_incident_changelist")).content.decode()
    assert "time to resolve" in page.lower()
    assert '<td class="field-time_to_resolve_display">0 s</td>' in page


@pytest.mark.parametrize("count", [2, 20])
def test_audit_event_pages_query_count_does_not_grow(
    staff: Client, responder: User, count: int, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    incident = make_incident(responder)
    for n in range(count):
        commands.incident_add_note(actor=responder, incident_id=incident.pk, body=f"note {n}")
    staff.get(reverse("admin:incidents_auditevent_changelist"))  # warm the per-process caches
    with django_assert_num_queries(5):
        listing = staff.get(reverse("admin:incidents_auditevent_changelist"))
    assert listing.context["cl"].result_count == count + 1
    event = AuditEvent.objects.get(incident=incident, seq=2)
    staff.get(reverse("admin:incidents_auditevent_change", args=[event.pk]))
    with django_assert_num_queries(3):
        page = staff.get(reverse("admin:incidents_auditevent_change", args=[event.pk]))
    assert page.status_code == 200
    assert "note 0" in page.content.decode()


@pytest.mark.parametrize("query", [{}, {"o": "-4"}, {"o": "4"}, {"type__exact": "note"}], ids=repr)
def test_the_audit_changelist_sorts_by_the_primary_key_not_the_unindexed_time(
    staff: Client, responder: User, query: dict[str, str]
) -> None:
    incident = make_incident(responder)
    commands.incident_add_note(actor=responder, incident_id=incident.pk, body="later")
    with CaptureQueriesContext(connection) as queries:
        listing = staff.get(reverse("admin:incidents_auditevent_changelist"), query)
    assert listing.status_code == 200
    page = [q["sql"] for q in queries if 'FROM "incidents_auditevent"' in q["sql"] and "ORDER BY" in q["sql"]]
    assert page, [q["sql"] for q in queries]
    assert all('ORDER BY "incidents_auditevent"."id"' in sql and '"at"' not in sql.split("ORDER BY")[1] for sql in page)
    seqs = [event.seq for event in listing.context["cl"].result_list]
    newest_first = query.get("o") != "4"  # 4: the time column, ascending
    expected = [2, 1] if newest_first else [1, 2]
    assert seqs == (expected if "type__exact" not in query else [2])


@pytest.mark.parametrize("role", ["viewer", "responder"])
def test_user_without_staff_is_redirected_to_the_admin_login(
    client: Client, make_user: Callable[..., User], responder: User, role: str
) -> None:
    client.force_login(make_user(role))
    incident = make_incident(responder)
    for url in (reverse("admin:incidents_incident_changelist"), change_url(incident)):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))


# --- Changes go through the commands ---------------------------------------------


def test_changing_severity_appends_one_severity_change_and_bumps_version(staff: Client, responder: User) -> None:
    incident = make_incident(responder)
    data = form_data(staff, change_url(incident))
    data["severity"] = "critical"
    response = staff.post(change_url(incident), data)
    assert response.status_code == 302
    incident.refresh_from_db()
    assert (incident.severity, incident.version) == ("critical", 2)
    assert events_of(incident) == [(1, "incident_created"), (2, "severity_change")]
    assert AuditEvent.objects.get(incident=incident, seq=2).data == {"from": "high", "to": "critical"}


def test_changing_severity_and_status_appends_both_events(staff: Client, admin: User, responder: User) -> None:
    incident = make_incident(responder)
    data = form_data(staff, change_url(incident))
    data.update(severity="low", status="monitoring")
    staff.post(change_url(incident), data)
    incident.refresh_from_db()
    assert (incident.status, incident.severity, incident.version) == ("monitoring", "low", 3)
    assert events_of(incident) == [(1, "incident_created"), (2, "severity_change"), (3, "status_change")]
    assert AuditEvent.objects.get(incident=incident, seq=3).actor == admin


def test_changing_assignees_appends_one_assignment_event(staff: Client, responder: User, viewer: User) -> None:
    incident = make_incident(responder)
    data = form_data(staff, change_url(incident))
    data.update(commander=str(responder.pk), assignees=[str(responder.pk), str(viewer.pk)])
    staff.post(change_url(incident), data)
    incident.refresh_from_db()
    assert incident.commander == responder
    assert set(incident.assignees.values_list("username", flat=True)) == {"rae", "vic"}
    assert events_of(incident) == [(1, "incident_created"), (2, "assignment")]


def test_saving_an_unchanged_form_records_nothing(staff: Client, responder: User) -> None:
    incident = make_incident(responder, summary="line one\nline two")
    commands.incident_update(actor=responder, incident_id=incident.pk, assignees=[responder])
    data = form_data(staff, change_url(incident))
    data["summary"] = data["summary"].replace("\n", "\r\n")  # as a browser posts a textarea
    response = staff.post(change_url(incident), data)
    assert response.status_code == 302
    assert Incident.objects.get(pk=incident.pk).version == 2
    assert len(events_of(incident)) == 2


def test_invalid_transition_is_a_form_error_and_changes_nothing(staff: Client, responder: User) -> None:
    incident = make_incident(responder)
    commands.incident_change_status(actor=responder, incident_id=incident.pk, status="resolved", resolution="Fixed.")
    data = form_data(staff, change_url(incident))
    data.update(status="monitoring", severity="low")
    response = staff.post(change_url(incident), data)
    assert response.status_code == 200
    assert "cannot move to monitoring" in str(response.context["adminform"].form.errors["status"])
    incident.refresh_from_db()
    assert (incident.status, incident.severity, incident.version) == ("resolved", "high", 2)


def test_saving_a_page_someone_changed_meanwhile_is_refused(staff: Client, responder: User) -> None:
    incident = make_incident(responder)
    data = form_data(staff, change_url(incident))
    commands.incident_add_note(actor=responder, incident_id=incident.pk, body="meanwhile")
    data["severity"] = "low"
    response = staff.post(change_url(incident), data)
    assert response.status_code == 200
    assert "not 1" in str(response.context["adminform"].form.non_field_errors())
    incident.refresh_from_db()
    assert (incident.severity, incident.version) == ("high", 2)


def test_command_refusal_during_save_is_a_form_error_and_rolls_back(
    client: Client, make_user: Callable[..., User], responder: User
) -> None:
    # A Django superuser whose platform role is viewer: the admin lets them in, the command does not.
    staff_viewer = make_user("viewer")
    User.objects.filter(pk=staff_viewer.pk).update(is_staff=True, is_superuser=True)
    client.force_login(staff_viewer)
    incident = make_incident(responder)
    data = form_data(client, change_url(incident))
    data.update(severity="low", status="identified")
    response = client.post(change_url(incident), data)
    assert response.status_code == 200
    assert "Only responders and admins" in str(response.context["adminform"].form.non_field_errors())
    incident.refresh_from_db()
    assert (incident.severity, incident.status, incident.version) == ("high", "investigating", 1)


def test_adding_an_incident_runs_create_then_assignment_then_status(staff: Client, admin: User, viewer: User) -> None:
    data = form_data(staff, reverse("admin:incidents_incident_add"))
    data.update(
        title="Login outage",
        severity="critical",
        summary="SSO down",
        status="identified",
        commander=str(admin.pk),
        assignees=[str(viewer.pk)],
    )
    response = staff.post(reverse("admin:incidents_incident_add"), data)
    assert response.status_code == 302
    incident = Incident.objects.get(title="Login outage")
    assert (incident.created_by, incident.status, incident.commander, incident.version) == (
        admin,
        "identified",
        admin,
        3,
    )
    assert events_of(incident) == [(1, "incident_created"), (2, "assignment"), (3, "status_change")]


def test_record_fields_are_read_only_and_a_rename_is_a_title_change(staff: Client, responder: User) -> None:
    incident = make_incident(responder)
    data = form_data(staff, change_url(incident))
    assert "version" not in data and "created_by" not in data
    data.update(title="  Renamed  ", version="99")
    staff.post(change_url(incident), data)
    incident.refresh_from_db()
    assert (incident.title, incident.version) == ("Renamed", 2)
    assert AuditEvent.objects.get(incident=incident, seq=2).data == {"from": "Disk full on db-3", "to": "Renamed"}


def test_resolve_action_resolves_open_incidents_and_reports_the_rest(staff: Client, responder: User) -> None:
    open_one, already = make_incident(responder), make_incident(responder)
    commands.incident_change_status(actor=responder, incident_id=already.pk, status="resolved", resolution="Fixed.")
    response = staff.post(
        reverse("admin:incidents_incident_changelist"),
        {
            "action": "resolve_selected",
            "_selected_action": [open_one.pk, already.pk],
            "apply": "Resolve",
            "resolution": "Rolled back.",
        },
        follow=True,
    )
    texts = [str(m) for m in response.context["messages"]]
    assert "Resolved 1 incident(s)." in texts
    assert any("Skipped 1" in t and "already resolved" in t for t in texts)
    assert events_of(open_one)[-1] == (2, "status_change")
    assert Incident.objects.get(pk=already.pk).version == 2


def test_incidents_cannot_be_deleted_in_the_admin(staff: Client, responder: User) -> None:
    incident = make_incident(responder)
    response = staff.post(reverse("admin:incidents_incident_delete", args=[incident.pk]), {"post": "yes"})
    assert response.status_code == 403
    assert Incident.objects.filter(pk=incident.pk).exists()


# --- The audit timeline is read-only, for superusers too -----------------------------


def test_audit_event_admin_refuses_add_change_and_delete(staff: Client, responder: User) -> None:
    incident = make_incident(responder)
    event = AuditEvent.objects.get(incident=incident)
    assert staff.get(reverse("admin:incidents_auditevent_add")).status_code == 403
    change = staff.post(reverse("admin:incidents_auditevent_change", args=[event.pk]), {"type": "note", "seq": 9})
    assert change.status_code == 403
    delete = staff.post(reverse("admin:incidents_auditevent_delete", args=[event.pk]), {"post": "yes"})
    assert delete.status_code == 403
    bulk = staff.post(
        reverse("admin:incidents_auditevent_changelist"), {"action": "delete_selected", "_selected_action": [event.pk]}
    )
    assert bulk.status_code in (200, 302)
    stored = AuditEvent.objects.get(pk=event.pk)
    assert (stored.seq, stored.type, stored.hash) == (1, "incident_created", event.hash)


def test_timeline_inline_offers_no_edit_fields(staff: Client, responder: User) -> None:
    incident = make_incident(responder)
    commands.action_item_add(actor=responder, incident_id=incident.pk, title="roll back")
    data = form_data(staff, change_url(incident))
    inline_inputs = [name for name in data if name.startswith(("events-", "action_items-"))]
    assert all(name.endswith(("FORMS", "-id", "-incident")) for name in inline_inputs), inline_inputs
