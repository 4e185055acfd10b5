"""The overview over a period: computed exactly from known incidents, as a page, an API and a CSV."""

import csv
import io
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import User
from incidents import commands
from incidents.overview import Row, overview_compute, percentile

Api = Callable[[User | None], APIClient]
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # a Monday


def row(pk: int, severity: str, status: str, opened: float, *stamps: float | None, day: int = 0) -> Row:
    """An incident opened `opened` minutes after T0 (+ days), with identified/mitigated/resolved minutes."""
    base = T0 + timedelta(days=day)
    at = [base + timedelta(minutes=m) if m is not None else None for m in (*stamps, None, None, None)[:3]]
    return Row(pk, severity, status, base + timedelta(minutes=opened), at[0], at[1], at[2])


@pytest.mark.parametrize(
    ("values", "p", "expected"),
    [
        ([], 90, None),
        ([5.0], 90, 5.0),
        ([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0], 90, 9.0),
        ([3.0, 1.0], 90, 3.0),
    ],
)
def test_p90_is_the_nearest_rank(values: list[float], p: float, expected: float | None) -> None:
    assert percentile(values, p) == expected


def test_the_overview_counts_times_weeks_and_the_slowest_stage() -> None:
    rows = [
        row(1, "critical", "resolved", 0, 10, 20, 30),  # identify 10, mitigate 10, resolve 10 min; ttr 30
        row(2, "critical", "resolved", 0, 5, 60, 90),  # identify 5, mitigate 55, resolve 30; ttr 90
        row(3, "high", "monitoring", 0, 2, 4, None),  # identify 2, mitigate 2
        row(4, "high", "investigating", 0, day=8),  # the second week
        row(5, "low", "resolved", 0, 1, 1, 1, day=9),  # straight to resolved: 1 min each arrival
    ]
    data = overview_compute(rows, since=date(2026, 11, 2), until=date(2026, 11, 15))
    assert data["total"] == 5
    critical, high, medium, low = data["by_severity"]
    assert critical == {
        "severity": "critical",
        "total": 2,
        "by_status": {"investigating": 0, "identified": 0, "monitoring": 0, "resolved": 2},
        "resolved": 2,
        "mean_time_to_resolve": 3600.0,
        "p90_time_to_resolve": 5400.0,
    }
    assert high["total"] == 2 and high["resolved"] == 0 and high["mean_time_to_resolve"] is None
    assert high["by_status"] == {"investigating": 1, "identified": 0, "monitoring": 1, "resolved": 0}
    assert medium["total"] == 0 and medium["p90_time_to_resolve"] is None
    assert low["mean_time_to_resolve"] == 60.0
    assert data["by_status"] == {"investigating": 1, "identified": 0, "monitoring": 1, "resolved": 3}
    assert data["per_week"] == [{"week": "2026-11-02", "incidents": 3}, {"week": "2026-11-09", "incidents": 2}]
    assert data["stages"] == [
        {"stage": "identify", "measured": 4, "mean": (600 + 300 + 120 + 60) / 4},
        {"stage": "mitigate", "measured": 4, "mean": (600 + 3300 + 120 + 0) / 4},
        {"stage": "resolve", "measured": 3, "mean": (600 + 1800 + 0) / 3},
    ]
    assert data["slowest_stage"] == "mitigate"


def test_an_empty_period_has_zero_weeks_and_no_slowest_stage() -> None:
    data = overview_compute([], since=date(2026, 11, 4), until=date(2026, 11, 10))
    assert data["total"] == 0
    assert data["per_week"] == [{"week": "2026-11-02", "incidents": 0}, {"week": "2026-11-09", "incidents": 0}]
    assert data["slowest_stage"] is None


# --- Through the database: the stamps the status command stores ---------------------------------


@pytest.fixture
def history(responder: User, monkeypatch: pytest.MonkeyPatch) -> None:
    def at(minutes: float) -> None:
        monkeypatch.setattr(timezone, "now", lambda: T0 + timedelta(minutes=minutes))

    at(0)
    a = commands.incident_create(actor=responder, title="=cmd|' /C calc'!A0", severity="critical").incident
    at(10)
    commands.incident_change_status(actor=responder, incident_id=a.pk, status="identified")
    at(40)
    commands.incident_change_status(actor=responder, incident_id=a.pk, status="monitoring")
    at(45)
    commands.incident_change_status(actor=responder, incident_id=a.pk, status="resolved", resolution="Fixed.")
    at(60 * 24 * 3)
    commands.incident_create(actor=responder, title="Search lag", severity="low")
    monkeypatch.undo()


@pytest.mark.django_db
def test_the_overview_api_reads_the_stamped_stages(api: Api, viewer: User, history: None) -> None:
    response = api(viewer).get("/api/overview", {"since": "2026-11-01", "until": "2026-11-30"})
    assert response.status_code == 200
    data = response.json()
    assert data["total"] == 2
    assert data["by_severity"][0]["mean_time_to_resolve"] == 2700.0
    assert data["stages"][0] == {"stage": "identify", "measured": 1, "mean": 600.0}
    assert data["stages"][1] == {"stage": "mitigate", "measured": 1, "mean": 1800.0}
    assert data["slowest_stage"] == "mitigate"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query",
    [{"since": "soon"}, {"since": "2026-11-30", "until": "2026-11-01"}, {"since": "2020-01-01", "until": "2026-01-01"}],
)
def test_the_overview_refuses_a_bad_period(api: Api, viewer: User, query: dict[str, str]) -> None:
    response = api(viewer).get("/api/overview", query)
    assert response.status_code == 400
    client = Client()
    client.force_login(viewer)
    assert client.get(reverse("incident-overview"), query).status_code == 400
    assert client.get(reverse("incident-overview-csv"), query).status_code == 400


@pytest.mark.django_db
def test_the_overview_needs_a_signed_in_user(api: Api) -> None:
    assert api(None).get("/api/overview").status_code == 401
    assert Client().get(reverse("incident-overview")).status_code == 302


@pytest.mark.django_db
def test_the_overview_page_draws_charts_with_a_table_beside(viewer: User, history: None) -> None:
    client = Client()
    client.force_login(viewer)
    page = client.get(reverse("incident-overview"), {"since": "2026-11-01", "until": "2026-11-30"}).content.decode()
    assert page.count('<svg class="chart"') == 3 and page.count('role="img"') == 3
    assert "2 incidents opened" in page
    assert "The slowest stage is <strong>mitigate</strong>" in page
    assert '<th scope="row">critical</th><td class="num-cell">1</td><td class="num-cell">45 min</td>' in page
    assert 'href="/overview.csv?since=2026-11-01&amp;until=2026-11-30" download' in page


@pytest.mark.django_db
def test_the_csv_export_has_one_row_per_incident_and_defuses_formulas(viewer: User, history: None) -> None:
    client = Client()
    client.force_login(viewer)
    response = client.get(reverse("incident-overview-csv"), {"since": "2026-11-01", "until": "2026-11-30"})
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="incidents-2026-11-01-2026-11-30.csv"'
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))  # type: ignore[attr-defined]
    assert rows[0][:4] == ["id", "title", "severity", "status"]
    first: dict[str, Any] = dict(zip(rows[0], rows[1], strict=True))
    assert first["title"] == "'=cmd|' /C calc'!A0"
    assert first["opened_at"] == "2026-11-02T09:00:00Z"
    assert (first["time_to_identify"], first["time_to_mitigate"], first["time_to_resolve"]) == (
        "600.000",
        "2400.000",
        "2700.000",
    )
    assert len(rows) == 3 and rows[2][1] == "Search lag" and rows[2][-1] == ""


@pytest.mark.django_db
def test_the_overview_reads_in_a_fixed_number_of_queries(
    viewer: User, history: None, django_assert_num_queries: Any
) -> None:
    client = Client()
    client.force_login(viewer)
    with django_assert_num_queries(3):  # session, user, the incidents of the period
        client.get(reverse("incident-overview"), {"since": "2026-11-01", "until": "2026-11-30"})


@pytest.mark.django_db
def test_a_period_at_the_end_of_the_calendar_is_answered(api: Api, viewer: User) -> None:
    response = api(viewer).get("/api/overview", {"since": "9999-12-01", "until": "9999-12-31"})
    assert response.status_code == 200
    assert response.json()["per_week"][-1] == {"week": "9999-12-27", "incidents": 0}
    response = api(viewer).get("/api/overview", {"until": "0001-01-03"})
    assert response.status_code == 200 and response.json()["since"] == "0001-01-01"
