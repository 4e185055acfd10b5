"""Demo users and incidents for `make run`. Safe to run again: nothing is created twice.

The incidents are made through the commands, like every other change, so
their timelines are real: hashed, sequenced and verifiable.
"""

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.services import user_set_role
from incidents import commands
from incidents.models import Incident

DEMO_USERS = [
    # username, role, password, full name
    ("admin", "admin", "admin-demo-password", "Ada Admin"),
    ("responder", "responder", "responder-demo-password", "Rae Responder"),
    ("viewer", "viewer", "viewer-demo-password", "Vic Viewer"),
    ("carol", "responder", "carol-demo-password", "Carol Chen"),
]


class Command(BaseCommand):
    help = "Create the demo admin, responder and viewer and a few incidents with timelines (idempotent)."

    def handle(self, *args: Any, **options: Any) -> None:
        users = {username: self._user(username, role, password, name) for username, role, password, name in DEMO_USERS}
        self._incidents(users)
        self.stdout.write("")
        self.stdout.write(self.style.SUCCESS("Demo accounts (sign in at http://localhost:8000/login/):"))
        for username, role, password, _ in DEMO_USERS:
            self.stdout.write(f"  {role:<10} username: {username:<10} password: {password}")
        self.stdout.write("")

    def _user(self, username: str, role: str, password: str, name: str) -> Any:
        User = get_user_model()
        user = User.objects.filter(username=username).first()
        if user is None:
            first, _, last = name.partition(" ")
            user = User.objects.create_user(
                username=username, password=password, email=f"{username}@example.com", first_name=first, last_name=last
            )
            user_set_role(user=user, role=role)
        return user

    @transaction.atomic
    def _incidents(self, users: dict[str, Any]) -> None:
        responder, carol, admin = users["responder"], users["carol"], users["admin"]

        if not Incident.objects.filter(title="Checkout latency spike").exists():
            incident = commands.incident_create(
                actor=responder,
                title="Checkout latency spike",
                severity="high",
                summary="p99 of /checkout above 2 s since deploy 8812.",
            ).incident
            # The declarer (responder) is the commander already.
            commands.incident_update(
                actor=responder, incident_id=incident.pk, comms_lead=carol, scribe=admin, assignees=[carol]
            )
            commands.incident_change_status(actor=responder, incident_id=incident.pk, status="identified")
            commands.incident_add_note(actor=carol, incident_id=incident.pk, body="Rolled back 8812 on half the fleet.")
            item = commands.action_item_add(
                actor=responder, incident_id=incident.pk, title="Roll back 8812", owner=carol
            ).item
            assert item is not None
            commands.action_item_update(actor=carol, incident_id=incident.pk, item_id=item.pk, done=True)
            commands.action_item_add(actor=carol, incident_id=incident.pk, title="Add a p99 latency alert")
            commands.incident_change_status(actor=responder, incident_id=incident.pk, status="monitoring")

        if not Incident.objects.filter(title="Payments API returning 503").exists():
            incident = commands.incident_create(
                actor=admin,
                title="Payments API returning 503",
                severity="critical",
                summary="Card payments fail for about 30% of requests in eu-west.",
            ).incident
            commands.incident_update(
                actor=admin, incident_id=incident.pk, comms_lead=responder, assignees=[responder, carol]
            )
            commands.incident_add_note(
                actor=responder, incident_id=incident.pk, body="Connection pool to the card processor is exhausted."
            )

        if not Incident.objects.filter(title="Search index lagging").exists():
            incident = commands.incident_create(
                actor=carol, title="Search index lagging", severity="low", summary="New products appear 20 min late."
            ).incident
            commands.incident_change_status(actor=carol, incident_id=incident.pk, status="identified")
            commands.incident_add_note(actor=carol, incident_id=incident.pk, body="Consumer group was rebalancing.")
            commands.incident_change_status(
                actor=carol,
                incident_id=incident.pk,
                status="resolved",
                resolution="Pinned the consumer group's partition assignment; the lag is back under a minute.",
            )
