"""PostgreSQL unreachable for 10 s while a daphne process serves: 503s and error frames, then recovery.

The database itself is never touched: the daphne process reaches it through
a TCP proxy of the test's own, which the test cuts (every connection
dropped, new ones refused) and restores. While it is cut, REST writes answer
503 `unavailable` with Retry-After and socket commands an `unavailable` error
frame with `retry_after`, never a 500 or `internal`; nothing is half-written.
When it is back the same process serves again, and every write retried with
its idempotency key lands exactly once.
"""

import asyncio
import json
import time
from collections.abc import Iterator
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from websockets.asyncio.client import ClientConnection, connect

from accounts.models import User
from incidents.models import AuditEvent, Incident
from tests.faults import WAIT, TcpProxy, http_json
from tests.servers import DaphneServer, database_url
from tests.ws_support import access_token, create_incident, run_sync

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

OUTAGE_SECONDS = 10


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    from django.db import connection

    with TcpProxy(
        connection.settings_dict.get("HOST") or "127.0.0.1", int(connection.settings_dict.get("PORT") or 5432)
    ) as p:
        yield p


@pytest.fixture
def daphne(proxy: TcpProxy) -> Iterator[DaphneServer]:
    direct = database_url()
    through_proxy = direct.replace(direct.split("@", 1)[1].split("/", 1)[0], f"127.0.0.1:{proxy.port}")
    # A short pool wait, so each attempt during the outage answers in about 2 s.
    with DaphneServer(DATABASE_URL=through_proxy, DATABASE_POOL_TIMEOUT="2") as server:
        yield server


async def ws_request(connection: ClientConnection, message: dict[str, Any]) -> dict[str, Any]:
    await connection.send(json.dumps(message))
    while True:
        reply = json.loads(await asyncio.wait_for(connection.recv(), WAIT))
        if reply.get("id") == message["id"] and reply["type"] in ("ack", "error"):
            return dict(reply)


def rest_note(server: DaphneServer, user: User, incident: int, key: str) -> tuple[int, dict[str, str], Any]:
    url = f"{server.url}/api/incidents/{incident}/notes"
    return http_json("POST", url, access_token(user), {"body": key}, key=key)


def notes_of(incident: int) -> list[str]:
    return list(
        AuditEvent.objects.filter(incident_id=incident, type="note")
        .order_by("seq")
        .values_list("data__body", flat=True)
    )


async def test_postgresql_unreachable_for_ten_seconds_answers_503_then_recovers_without_a_restart(
    proxy: TcpProxy, daphne: DaphneServer, responder: User
) -> None:
    incident = (await run_sync(create_incident, responder)).pk
    socket = await connect(
        daphne.ws_url,
        additional_headers={"Authorization": f"Bearer {access_token(responder)}"},
        origin=f"http://127.0.0.1:{daphne.port}",  # type: ignore[arg-type]
        open_timeout=WAIT,
    )
    try:
        assert (await ws_request(socket, {"type": "incident:join", "id": "join", "incident": incident}))[
            "type"
        ] == "ack"
        status, _, body = await asyncio.to_thread(rest_note, daphne, responder, incident, "rest-before")
        assert status == 201, body

        proxy.cut()
        cut_at = time.monotonic()
        rest_keys: list[str] = []
        ws_keys: list[str] = []
        while time.monotonic() - cut_at < OUTAGE_SECONDS:
            key = f"rest-{len(rest_keys)}"
            status, headers, body = await asyncio.to_thread(rest_note, daphne, responder, incident, key)
            assert status == 503, (status, body)
            assert body["code"] == "unavailable" and body["retry_after"] > 0, body
            assert int(headers["Retry-After"]) > 0
            rest_keys.append(key)

            key = f"ws-{len(ws_keys)}"
            reply = await ws_request(
                socket, {"type": "incident:addNote", "id": key, "incident": incident, "body": key, "key": key}
            )
            assert (reply["type"], reply["code"]) == ("error", "unavailable"), reply
            assert reply["retry_after"] > 0
            ws_keys.append(key)
        # Nothing was written while it was cut; the row is as its events say.
        assert await run_sync(notes_of, incident) == ["rest-before"]
        assert len(rest_keys) >= 2 and len(ws_keys) >= 2

        proxy.restore()
        # The same process recovers by itself: retry (as a client told "retry_after" would) until it answers.
        answers = []
        deadline = time.monotonic() + 2 * WAIT
        while True:
            status, _, body = await asyncio.to_thread(rest_note, daphne, responder, incident, rest_keys[0])
            answers.append(status)
            if status == 201 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        assert set(answers) <= {201, 503} and answers[-1] == 201, answers
        # Every write retried with its key lands once; a retry of one that landed changes nothing more.
        for key in rest_keys:
            status, _, body = await asyncio.to_thread(rest_note, daphne, responder, incident, key)
            assert status == 201, (key, status, body)
        for key in ws_keys:
            reply = await ws_request(
                socket,
                {"type": "incident:addNote", "id": f"{key}-again", "incident": incident, "body": key, "key": key},
            )
            assert reply["type"] == "ack", reply
        assert await run_sync(notes_of, incident) == ["rest-before", *rest_keys, *ws_keys]
        version = await run_sync(lambda: Incident.objects.get(pk=incident).version)
        assert version == 2 + len(rest_keys) + len(ws_keys)

        out = StringIO()
        await run_sync(call_command, "verify_audit", str(incident), stdout=out)
        assert "intact for 1 incident" in out.getvalue()
        assert daphne.process is not None and daphne.process.poll() is None  # never restarted
    finally:
        await socket.close()
