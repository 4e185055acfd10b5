"""Outgoing webhooks: the outbox written with the event, and the worker that delivers it signed, with retries.

Deliveries go to a real HTTP receiver on loopback (tests/webhook_receiver.py).
The worker's clock is passed in (`deliver_due(now=...)`) so a retry's backoff
is waited out by moving the clock, not by sleeping.
"""

import hashlib
import hmac
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import User
from incidents import commands
from incidents.errors import Conflict
from incidents.models import AuditEvent, Incident
from incidents.webhooks import delivery, payloads
from incidents.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

from .webhook_receiver import Receiver, Silent, closed_port

SECRET = "s3cret-for-the-receiver"


def endpoint(url: str = "http://127.0.0.1:9/hook", **extra: Any) -> WebhookEndpoint:
    return WebhookEndpoint.objects.create(name=extra.pop("name", "ops"), url=url, secret=SECRET, **extra)


def declare(actor: User, title: str = "Checkout is down") -> Incident:
    return commands.incident_create(actor=actor, title=title, severity="critical").incident


def verified(headers: dict[str, str], body: bytes, secret: str = SECRET) -> bool:
    """What a receiver does (docs/api.md): HMAC-SHA256 over "<t>." + body, compared in constant time, t recent."""
    parts = dict(item.split("=", 1) for item in headers["X-Webhook-Signature"].split(","))
    expected = hmac.new(secret.encode(), parts["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"]) and abs(time.time() - int(parts["t"])) < 300


def attempts_of(row: WebhookDelivery) -> list[tuple[int | None, bool]]:
    """Each attempt's status code and whether it logged an error, in order."""
    return [(a.status_code, bool(a.error)) for a in WebhookAttempt.objects.filter(delivery=row).order_by("number")]


# --- The outbox: written with the event, in its transaction ----------------------


@pytest.mark.django_db
def test_each_event_writes_one_delivery_per_matching_active_endpoint(responder: User) -> None:
    everything = endpoint(name="all")
    statuses = endpoint(name="statuses", event_types=["status_change"], payload_format="slack")
    endpoint(name="off", is_active=False)
    incident = declare(responder)
    commands.incident_change_status(actor=responder, incident_id=incident.pk, status="identified")

    rows = WebhookDelivery.objects.order_by("pk")
    assert [(r.endpoint_id, r.event_type, r.status, r.attempts) for r in rows] == [
        (everything.pk, "incident_created", "pending", 0),
        (everything.pk, "status_change", "pending", 0),
        (statuses.pk, "status_change", "pending", 0),
    ]
    assert {r.event_id for r in rows} == set(AuditEvent.objects.filter(incident=incident).values_list("pk", flat=True))


@pytest.mark.django_db
def test_a_change_through_the_rest_api_is_delivered_and_a_refused_one_is_not(
    api: Any, responder: User, viewer: User
) -> None:
    endpoint(event_types=["note"])
    incident = declare(responder)
    path = f"/api/incidents/{incident.pk}/notes"
    assert api(responder).post(path, {"body": "Paged the DBA"}, format="json").status_code == 201
    assert api(viewer).post(path, {"body": "not mine"}, format="json").status_code == 403
    [row] = WebhookDelivery.objects.all()
    assert row.payload["event"]["data"] == {"body": "Paged the DBA"}


@pytest.mark.django_db
def test_a_rolled_back_command_leaves_no_delivery_and_no_event(responder: User) -> None:
    endpoint()
    incident = declare(responder)
    before = WebhookDelivery.objects.count()

    with pytest.raises(RuntimeError), transaction.atomic():
        commands.incident_add_note(actor=responder, incident_id=incident.pk, body="never committed")
        assert WebhookDelivery.objects.count() == before + 1  # written inside the command's transaction
        raise RuntimeError("the surrounding transaction fails after the command")

    assert WebhookDelivery.objects.count() == before
    assert not AuditEvent.objects.filter(incident=incident, type="note").exists()


@pytest.mark.django_db
def test_a_refused_command_writes_no_delivery(responder: User) -> None:
    endpoint()
    incident = declare(responder)
    with pytest.raises(Conflict):
        commands.incident_change_status(
            actor=responder, incident_id=incident.pk, status="identified", expected_version=99
        )
    assert list(WebhookDelivery.objects.values_list("event_type", flat=True)) == ["incident_created"]


@pytest.mark.django_db
def test_no_endpoint_costs_one_query_per_event(responder: User, django_assert_num_queries: Any) -> None:
    incident = declare(responder)
    event = AuditEvent.objects.get(incident=incident)
    from incidents.webhooks import outbox

    with django_assert_num_queries(1):
        assert outbox.enqueue(incident, event) == []


# --- Delivery to a receiver on loopback ------------------------------------------


@pytest.mark.django_db
def test_the_receiver_gets_the_signed_json_payload_and_can_verify_it(responder: User) -> None:
    with Receiver() as receiver:
        endpoint(receiver.url)
        incident = declare(responder, title="Payments <failing> & slow")
        settled = delivery.deliver_due()

    assert settled == {"delivered": 1}
    [request] = receiver.received
    assert verified(request.headers, request.body)
    assert not verified(request.headers, request.body, secret="another secret")
    assert not verified(request.headers, request.body.replace(b"critical", b"low"))
    row = WebhookDelivery.objects.get()
    assert request.headers["X-Webhook-Id"] == str(row.pk)
    assert request.headers["X-Webhook-Event"] == "incident_created"
    assert request.headers["Content-Type"] == "application/json"
    payload = json.loads(request.body)
    assert payload == {
        "event": {
            "seq": 1,
            "type": "incident_created",
            "actor": {"id": responder.pk, "username": responder.username},
            "at": payload["event"]["at"],
            "data": {
                "title": "Payments <failing> & slow",
                "severity": "critical",
                "summary": "",
                "commander": responder.as_ref(),
            },
        },
        "incident": {
            "id": incident.pk,
            "title": "Payments <failing> & slow",
            "url": f"http://localhost:8000/incidents/{incident.pk}/",
            "status": "investigating",
            "severity": "critical",
        },
        "actor": {"id": responder.pk, "username": responder.username},
    }
    assert (row.status, row.attempts, row.delivered_at is not None) == ("delivered", 1, True)
    [attempt] = WebhookAttempt.objects.filter(delivery=row)
    assert (attempt.number, attempt.status_code, attempt.error, attempt.response_excerpt) == (1, 200, "", "answer 200")


@pytest.mark.django_db
def test_a_receiver_that_is_down_is_retried_with_growing_backoff_until_it_is_up(responder: User, settings: Any) -> None:
    settings.WEBHOOK_BACKOFF_SECONDS = 10
    port = closed_port()
    endpoint(f"http://127.0.0.1:{port}/hook")
    declare(responder)
    row = WebhookDelivery.objects.get()

    t0 = timezone.now()
    assert delivery.deliver_due(now=t0) == {"pending": 1}
    row.refresh_from_db()
    first_wait = (row.next_attempt_at - t0).total_seconds()
    assert 5 <= first_wait <= 10  # base·2^0, half of it jittered
    assert "Connection refused" in row.last_error
    assert delivery.deliver_due(now=t0 + timedelta(seconds=4)) == {}  # not due yet: nothing is sent

    t1 = row.next_attempt_at
    assert delivery.deliver_due(now=t1) == {"pending": 1}
    row.refresh_from_db()
    assert 10 <= (row.next_attempt_at - t1).total_seconds() <= 20  # base·2^1

    with Receiver(port=port) as receiver:  # the receiver comes back on the same port
        assert delivery.deliver_due(now=row.next_attempt_at) == {"delivered": 1}
    assert len(receiver.received) == 1
    assert verified(receiver.received[0].headers, receiver.received[0].body)
    row.refresh_from_db()
    assert (row.status, row.attempts, row.last_error) == ("delivered", 3, "")
    assert attempts_of(row) == [(None, True), (None, True), (200, False)]
    assert all(a.duration_ms >= 0 for a in WebhookAttempt.objects.filter(delivery=row))


@pytest.mark.django_db
def test_a_receiver_answering_500_then_200_is_delivered_by_the_worker_command(responder: User, settings: Any) -> None:
    settings.WEBHOOK_BACKOFF_SECONDS = 0  # retries are due at once, so one `--once` run sees both
    out = StringIO()
    with Receiver(statuses=(500,)) as receiver:
        endpoint(receiver.url)
        declare(responder)
        call_command("deliver_webhooks", "--once", stdout=out)

    row = WebhookDelivery.objects.get()
    assert (row.status, row.attempts) == ("delivered", 2)
    assert attempts_of(row) == [(500, True), (200, False)]
    assert WebhookAttempt.objects.get(delivery=row, number=1).response_excerpt == "answer 500"
    assert len(receiver.received) == 2
    assert receiver.received[0].headers["X-Webhook-Id"] == receiver.received[1].headers["X-Webhook-Id"]
    assert "delivered 1, to retry 1, failed 0" in out.getvalue()


@pytest.mark.django_db
def test_max_attempts_marks_the_delivery_failed_and_retry_now_gives_it_one_more(responder: User, settings: Any) -> None:
    settings.WEBHOOK_BACKOFF_SECONDS = 0
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    with Receiver(statuses=(503,) * 10) as receiver:
        endpoint(receiver.url)
        declare(responder)
        call_command("deliver_webhooks", "--once", stdout=StringIO())
        row = WebhookDelivery.objects.get()
        assert (row.status, row.attempts, row.last_error) == ("failed", 3, "HTTP 503")
        assert len(receiver.received) == 3
        assert delivery.deliver_due(now=timezone.now() + timedelta(days=1)) == {}  # failed is final

        receiver._statuses.clear()
        assert delivery.retry_now(WebhookDelivery.objects.all()) == 1
        assert delivery.deliver_due() == {"delivered": 1}
    assert attempts_of(row) == [(503, True), (503, True), (503, True), (200, False)]


@pytest.mark.django_db
def test_a_redirect_is_logged_as_a_failed_attempt_and_not_followed(responder: User) -> None:
    with Receiver(statuses=(302,)) as receiver:
        endpoint(receiver.url)
        declare(responder)
        assert delivery.deliver_due() == {"pending": 1}
    assert len(receiver.received) == 1
    assert attempts_of(WebhookDelivery.objects.get()) == [(302, True)]


@pytest.mark.django_db
@pytest.mark.parametrize("status", [200, 500])
def test_an_answer_with_nul_and_invalid_utf8_is_logged_as_text_the_database_can_store(
    responder: User, status: int
) -> None:
    with Receiver(statuses=(status,), answer=b"ok\x00\xff" + b"x" * 2000) as receiver:
        endpoint(receiver.url)
        declare(responder)
        assert delivery.deliver_due() == {"delivered" if status == 200 else "pending": 1}
    attempt = WebhookAttempt.objects.get()
    assert attempt.response_excerpt.startswith("ok\ufffd\ufffdxxx")
    assert len(attempt.response_excerpt) == 500


@pytest.mark.django_db
def test_a_receiver_that_never_answers_times_out(responder: User, settings: Any) -> None:
    settings.WEBHOOK_TIMEOUT_SECONDS = 0.3
    with Silent() as silent:
        endpoint(silent.url)
        declare(responder)
        started = time.monotonic()
        assert delivery.deliver_due() == {"pending": 1}
    assert time.monotonic() - started < 5
    attempt = WebhookAttempt.objects.get()
    assert attempt.status_code is None
    assert "timed out" in attempt.error


@pytest.mark.django_db
def test_a_deactivated_endpoints_deliveries_wait_until_it_is_active_again(responder: User) -> None:
    with Receiver() as receiver:
        hook = endpoint(receiver.url)
        declare(responder)
        WebhookEndpoint.objects.filter(pk=hook.pk).update(is_active=False)
        assert delivery.deliver_due() == {}
        WebhookEndpoint.objects.filter(pk=hook.pk).update(is_active=True)
        assert delivery.deliver_due() == {"delivered": 1}
    assert len(receiver.received) == 1


def test_backoff_doubles_with_each_attempt_jittered_and_capped(settings: Any) -> None:
    settings.WEBHOOK_BACKOFF_SECONDS = 10
    settings.WEBHOOK_BACKOFF_MAX_SECONDS = 300
    rng = random.Random(7)
    for attempt, full in [(1, 10), (2, 20), (3, 40), (5, 160), (6, 300), (20, 300)]:
        waits = [delivery.backoff_seconds(attempt, rng=rng) for _ in range(50)]
        assert all(full / 2 <= w <= full for w in waits)
        assert len(set(waits)) == 50  # jittered: no two retries of a burst line up


# --- The Slack-style payload --------------------------------------------------------


@pytest.mark.django_db
def test_a_slack_endpoint_gets_text_and_blocks_with_the_link_and_escaped_text(responder: User) -> None:
    with Receiver() as receiver:
        endpoint(receiver.url, payload_format="slack", event_types=["note", "status_change"])
        incident = declare(responder, title="DB <primary> & replica")
        commands.incident_add_note(actor=responder, incident_id=incident.pk, body="see <https://evil|here> & @rae")
        commands.incident_change_status(actor=responder, incident_id=incident.pk, status="identified")
        assert delivery.deliver_due() == {"delivered": 2}

    note, status = (json.loads(r.body) for r in receiver.received)
    assert verified(receiver.received[0].headers, receiver.received[0].body)
    for payload in (note, status):
        assert set(payload) == {"text", "blocks"}
        assert [block["type"] for block in payload["blocks"]] == ["section", "context"]
        assert payload["blocks"][0]["text"]["type"] == "mrkdwn"
    url = f"http://localhost:8000/incidents/{incident.pk}/"
    assert note["text"] == (
        f"[#{incident.pk} DB &lt;primary&gt; &amp; replica] *rae* added a note: "
        "see &lt;https://evil|here&gt; &amp; @rae"
    )
    assert note["blocks"][0]["text"]["text"].startswith(f"*<{url}|#{incident.pk} DB &lt;primary&gt; &amp; replica>*\n")
    assert status["text"].endswith("*rae* changed the status: investigating → identified")
    assert "identified · event 3 (status_change)" in status["blocks"][1]["elements"][0]["text"]


# --- Two workers at once (PostgreSQL: FOR UPDATE SKIP LOCKED) ---------------------


def _in_thread(work: Any) -> threading.Thread:
    def run() -> None:
        try:
            work()
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_claim_skips_rows_another_worker_holds_instead_of_waiting(responder: User) -> None:
    endpoint()
    incident = declare(responder)
    for n in range(3):
        commands.incident_add_note(actor=responder, incident_id=incident.pk, body=f"n{n}")
    held, release = threading.Event(), threading.Event()
    taken: list[int] = []

    def other_worker() -> None:
        with transaction.atomic():
            rows = WebhookDelivery.objects.select_for_update().order_by("pk")[:2]
            taken.extend(row.pk for row in rows)
            held.set()
            release.wait(timeout=30)

    thread = _in_thread(other_worker)
    try:
        assert held.wait(timeout=10)
        started = time.monotonic()
        claimed = delivery.claim(limit=10, now=timezone.now())
        assert time.monotonic() - started < 5  # did not queue behind the other transaction
    finally:
        release.set()
        thread.join(timeout=10)
    all_pks = set(WebhookDelivery.objects.values_list("pk", flat=True))
    assert {row.pk for row in claimed} == all_pks - set(taken)
    assert len(claimed) == 2


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_workers_at_once_deliver_each_delivery_exactly_once(responder: User) -> None:
    with Receiver() as receiver:
        endpoint(receiver.url)
        incident = declare(responder)
        for n in range(39):
            commands.incident_add_note(actor=responder, incident_id=incident.pk, body=f"note {n}")
        barrier = threading.Barrier(2, timeout=10)
        per_worker: list[int] = [0, 0]

        def worker(i: int) -> None:
            barrier.wait()
            while settled := delivery.deliver_due(limit=3):
                per_worker[i] += sum(settled.values())

        threads = [_in_thread(lambda i=i: worker(i)) for i in range(2)]
        for thread in threads:
            thread.join(timeout=60)
        assert not any(thread.is_alive() for thread in threads)

    ids = [r.headers["X-Webhook-Id"] for r in receiver.received]
    assert len(ids) == 40
    assert sorted(ids) == sorted(str(pk) for pk in WebhookDelivery.objects.values_list("pk", flat=True))
    assert sum(per_worker) == 40
    assert set(WebhookDelivery.objects.values_list("status", "attempts")) == {("delivered", 1)}
    assert WebhookAttempt.objects.count() == 40


# --- The worker process, as the Procfile starts it ---------------------------------


@pytest.mark.django_db
def test_a_stopping_worker_hands_back_the_rest_of_its_batch_unsent(responder: User) -> None:
    with Receiver() as receiver:
        endpoint(receiver.url)
        incident = declare(responder)
        commands.incident_add_note(actor=responder, incident_id=incident.pk, body="two")
        commands.incident_add_note(actor=responder, incident_id=incident.pk, body="three")
        sent = iter([False, True])
        assert delivery.deliver_due(limit=3, should_stop=lambda: next(sent)) == {"delivered": 1}
        assert len(receiver.received) == 1
        assert sorted(WebhookDelivery.objects.values_list("status", "attempts")) == [
            ("delivered", 1),
            ("pending", 0),
            ("pending", 0),
        ]
        assert delivery.deliver_due() == {"delivered": 2}  # due again at once, not after the lease


@pytest.mark.django_db(transaction=True)
def test_the_worker_process_delivers_what_a_command_enqueues_and_stops_on_sigterm(responder: User) -> None:
    from .servers import BASE_DIR, database_url

    with Receiver() as receiver:
        endpoint(receiver.url)
        env = {**os.environ, "DATABASE_URL": database_url(), "DEBUG": "true", "PYTHONUNBUFFERED": "1"}
        env.pop("REDIS_URL", None)
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "deliver_webhooks", "--interval", "0.1"],
            cwd=BASE_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            declare(responder)
            deadline = time.monotonic() + 20
            while not receiver.received and time.monotonic() < deadline and worker.poll() is None:
                time.sleep(0.05)  # polling the receiver, bounded by the deadline
            assert len(receiver.received) == 1
            worker.send_signal(signal.SIGTERM)
            output, _ = worker.communicate(timeout=20)
        finally:
            if worker.poll() is None:
                worker.kill()
    assert worker.returncode == 0, output.decode()
    assert b"delivered 1, to retry 0, failed 0" in output
    assert verified(receiver.received[0].headers, receiver.received[0].body)
    assert WebhookDelivery.objects.get().status == "delivered"


@pytest.mark.django_db
def test_every_event_type_has_a_slack_line_naming_the_actor(responder: User) -> None:
    """Types without a line of their own (added later) still read: "<actor> recorded <type>"."""
    incident = declare(responder)
    event = AuditEvent.objects.get(incident=incident)
    for kind in [*AuditEvent.Type.values, "title_change", "a_type_added_later"]:
        event.type = kind
        event.data = {}
        line = payloads.describe(event)
        assert line.startswith("*rae* ") and len(line) > len("*rae* ")
    event.type = "a_type_added_later"
    assert payloads.describe(event) == "*rae* recorded a type added later"
    event.type, event.data = (
        "assignment",
        {
            "commander": {"from": None, "to": {"id": 1, "username": "ada"}},
            "comms_lead": {"from": None, "to": {"id": 2, "username": "rae"}},
            "scribe": {"from": {"id": 2, "username": "rae"}, "to": None},
            "assignees": {"added": [{"id": 3, "username": "vic"}], "removed": []},
        },
    )
    assert payloads.describe(event) == (
        "*rae* changed the assignment: commander → ada; communications lead → rae; scribe → nobody; assigned vic"
    )
    event.type, event.data = "status_update", {"body": "Rolling back <now>"}
    assert payloads.describe(event) == "*rae* posted a status update: Rolling back &lt;now&gt;"
    event.type, event.data = "update_cadence_change", {"from": None, "to": 30}
    assert payloads.describe(event) == "*rae* set status updates every 30 min"


# --- Purging the settled log ---------------------------------------------------------


@pytest.mark.django_db
def test_purge_deletes_old_settled_deliveries_with_their_attempts_and_keeps_pending_and_recent(
    responder: User, settings: Any
) -> None:
    settings.WEBHOOK_MAX_ATTEMPTS = 1
    with Receiver(statuses=(500,)) as receiver:
        endpoint(receiver.url)
        incident = declare(responder)
        for n in range(3):
            commands.incident_add_note(actor=responder, incident_id=incident.pk, body=f"n{n}")
        assert delivery.deliver_due(limit=3) == {"failed": 1, "delivered": 2}
    old, recent = timezone.now() - timedelta(days=31), timezone.now() - timedelta(days=29)
    first, second, third, pending = WebhookDelivery.objects.order_by("pk")
    assert (first.status, pending.status) == ("failed", "pending")
    WebhookDelivery.objects.filter(pk__in=[first.pk, second.pk, pending.pk]).update(created_at=old)
    WebhookDelivery.objects.filter(pk=third.pk).update(created_at=recent)

    out = StringIO()
    call_command("purge_webhook_deliveries", "--days", "30", "--batch-size", "1", stdout=out)

    assert "Deleted 2 settled webhook deliveries older than 30 days; batches: 2." in out.getvalue()
    assert sorted(WebhookDelivery.objects.values_list("pk", flat=True)) == [third.pk, pending.pk]
    assert set(WebhookAttempt.objects.values_list("delivery_id", flat=True)) == {third.pk}


@pytest.mark.django_db
@pytest.mark.parametrize("arguments", [["--days", "0"], ["--days", "-3"], ["--days", "x"], ["--batch-size", "0"]])
def test_purge_refuses_bad_arguments_and_deletes_nothing(responder: User, arguments: list[str]) -> None:
    endpoint()
    declare(responder)
    WebhookDelivery.objects.update(status="delivered", created_at=timezone.now() - timedelta(days=400))
    with pytest.raises(CommandError):
        call_command("purge_webhook_deliveries", *arguments, stdout=StringIO())
    assert WebhookDelivery.objects.count() == 1


@pytest.mark.django_db
def test_a_delivery_whose_endpoint_was_deleted_while_sending_is_dropped_quietly(responder: User) -> None:
    hook = endpoint()
    declare(responder)
    [claimed] = delivery.claim(limit=1, now=timezone.now())
    hook.delete()  # its deliveries go with it
    assert delivery.record(claimed, delivery.Outcome(200, "", 3), now=timezone.now()) is None
    assert not WebhookAttempt.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("arguments", [["--interval", "0"], ["--interval", "-1"], ["--batch", "0"], ["--batch", "x"]])
def test_the_worker_refuses_bad_arguments(arguments: list[str]) -> None:
    with pytest.raises(CommandError):
        call_command("deliver_webhooks", "--once", *arguments, stdout=StringIO())


@pytest.mark.django_db
def test_the_worker_loop_outlives_a_database_error_and_puts_back_the_signal_handlers(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from django.db import OperationalError

    from incidents.webhooks.management.commands import deliver_webhooks

    calls: list[int] = []

    def flaky(**kwargs: Any) -> Counter[str]:
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("the server closed the connection unexpectedly")
        os.kill(os.getpid(), signal.SIGTERM)  # the second round asks the worker to stop, as systemd would
        return Counter()

    monkeypatch.setattr(deliver_webhooks, "deliver_due", flaky)
    before = signal.getsignal(signal.SIGTERM)
    out = StringIO()
    call_command("deliver_webhooks", "--interval", "0.01", stdout=out)
    assert len(calls) == 2
    assert "database error; retrying" in caplog.text
    assert "delivered 0, to retry 0, failed 0" in out.getvalue()
    assert signal.getsignal(signal.SIGTERM) is before
