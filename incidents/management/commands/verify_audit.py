import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from incidents import audit_key
from incidents.audit import Verification, verify
from incidents.models import AuditEvent, Incident


@dataclass(frozen=True)
class Head:
    seq: int
    hash: str
    line: int


class Command(BaseCommand):
    help = (
        "Prove audit timelines whole: the hash chain, the MACs under AUDIT_KEY, and the incident rows against "
        "their events; with --checkpoint, also against chain heads recorded earlier outside the database. "
        "Fails naming the first problem."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("incident", nargs="?", type=int, help="an incident id (default: every incident)")
        parser.add_argument(
            "--checkpoint",
            metavar="FILE",
            help="an append-only file of chain heads: each head recorded there must still be in the chain "
            "(catches a rewritten or cut-off timeline); the current heads are appended when all is well",
        )
        parser.add_argument(
            "--allow-unkeyed",
            action="store_true",
            help="with AUDIT_KEY set, accept events without a MAC at the start of a timeline "
            "(written before the key was set); take a --checkpoint to anchor them",
        )

    def handle(
        self,
        *args: Any,
        incident: int | None = None,
        checkpoint: str | None = None,
        allow_unkeyed: bool = False,
        **options: Any,
    ) -> None:
        if incident is not None and not Incident.objects.filter(pk=incident).exists():
            raise CommandError(f"Incident {incident} does not exist.")
        heads = read_checkpoint(Path(checkpoint)) if checkpoint else {}
        ids = [incident] if incident is not None else list(Incident.objects.order_by("pk").values_list("pk", flat=True))
        results: list[Verification] = []
        for incident_id in ids:
            result = verify(incident_id, allow_unkeyed=allow_unkeyed)
            if result.problem is not None:
                raise CommandError(f"Audit timeline broken: {result.problem}")
            if incident_id in heads:
                compare_with_checkpoint(result, heads[incident_id], checkpoint or "")
            results.append(result)
        if checkpoint and incident is None:
            missing = sorted(set(heads) - set(ids))
            if missing:
                head = heads[missing[0]]
                raise CommandError(
                    f"Audit timeline broken: incident {missing[0]} is in the checkpoint ({checkpoint} line "
                    f"{head.line}) but not in the database"
                )

        self.stdout.write(self.style.SUCCESS(f"Audit timeline intact for {len(ids)} incident(s)."))
        unkeyed = sum(r.unkeyed for r in results)
        if not audit_key.is_set():
            self.stdout.write("AUDIT_KEY is not set: MACs were not checked and new events are unkeyed.")
        elif unkeyed:
            self.stdout.write(f"{unkeyed} event(s) carry no MAC (written before AUDIT_KEY was set).")
        if checkpoint:
            appended = append_heads(Path(checkpoint), [r for r in results if changed(r, heads)])
            self.stdout.write(
                f"Checkpoint {checkpoint}: {sum(r.incident_id in heads for r in results)} incident(s) matched "
                f"their recorded heads; {appended} head(s) appended."
            )


def read_checkpoint(path: Path) -> dict[int, Head]:
    """The newest recorded head of each incident (a missing file is an empty checkpoint)."""
    if not path.exists():
        return {}
    heads: dict[int, Head] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise CommandError(f"Cannot read the checkpoint {path}: {error}") from error
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            incident, seq, hash_ = entry["incident"], entry["seq"], entry["hash"]
            if not (isinstance(incident, int) and isinstance(seq, int) and isinstance(hash_, str) and seq >= 1):
                raise TypeError("incident and seq must be integers, hash a string")
        except (ValueError, KeyError, TypeError) as error:
            raise CommandError(
                f'{path} line {number} is not a checkpoint line ({{"incident": id, "seq": n, "hash": "..."}}): {error}'
            ) from error
        heads[incident] = Head(seq, hash_, number)
    return heads


def compare_with_checkpoint(result: Verification, head: Head, checkpoint: str) -> None:
    where = f"{checkpoint} line {head.line}"
    if result.head_seq < head.seq:
        raise CommandError(
            f"Audit timeline broken: incident {result.incident_id}: the checkpoint ({where}) recorded seq "
            f"{head.seq}, the database ends at seq {result.head_seq} (events cut off the end)"
        )
    stored = AuditEvent.objects.filter(incident_id=result.incident_id, seq=head.seq).values_list("hash", flat=True)
    if stored.first() != head.hash:
        raise CommandError(
            f"Audit timeline broken: incident {result.incident_id} event {head.seq}: its hash is not the one "
            f"the checkpoint recorded ({where}): the timeline was rewritten up to there"
        )


def changed(result: Verification, heads: dict[int, Head]) -> bool:
    head = heads.get(result.incident_id)
    return result.head_seq > 0 and (head is None or (head.seq, head.hash) != (result.head_seq, result.head_hash))


def append_heads(path: Path, results: list[Verification]) -> int:
    """Append (never rewrite) one line per new head, and make it durable before saying so."""
    if not results:
        return 0
    now = timezone.now().isoformat()
    text = "".join(
        json.dumps({"incident": r.incident_id, "seq": r.head_seq, "hash": r.head_hash, "at": now}) + "\n"
        for r in results
    )
    try:
        with path.open("a", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
    except OSError as error:
        raise CommandError(f"Cannot append to the checkpoint {path}: {error}") from error
    return len(results)
