from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from incidents.audit import verify_incident
from incidents.models import Incident


class Command(BaseCommand):
    help = "Recompute the audit hash chain of one incident or all, and fail naming the first bad event."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("incident", nargs="?", type=int, help="an incident id (default: every incident)")

    def handle(self, *args: Any, incident: int | None = None, **options: Any) -> None:
        if incident is not None and not Incident.objects.filter(pk=incident).exists():
            raise CommandError(f"Incident {incident} does not exist.")
        ids = [incident] if incident is not None else list(Incident.objects.order_by("pk").values_list("pk", flat=True))
        for incident_id in ids:
            problem = verify_incident(incident_id)
            if problem is not None:
                raise CommandError(f"Audit timeline broken: {problem}")
        self.stdout.write(self.style.SUCCESS(f"Audit timeline intact for {len(ids)} incident(s)."))
