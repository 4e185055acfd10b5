"""`make test`: the whole suite, on the embedded default and on the production stack.

Pass 1, embedded: SQLite and the in-memory channel layer, as `make run` serves.
Pass 2, production stack: PostgreSQL and Redis (TEST_DATABASE_URL and
TEST_REDIS_URL, defaulting to this machine's services). If they cannot be
reached, pass 2 is reported as skipped with the reason, loudly; with CI=true
that is a failure instead, since CI must test the production stack.

Extra arguments go to pytest in both passes: `make test ARGS="-k presence"`
is `python -m tests.run -k presence`.
"""

import os
import socket
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urlparse

import psycopg

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/incident_platform_test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def reachable(url: str) -> str | None:
    """None if a TCP connection to the URL's host and port opens, else why not."""
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 0), timeout=3):
            return None
    except OSError as exc:
        return f"{parsed.hostname}:{parsed.port}: {exc}"


def ensure_database(url: str) -> None:
    """Create the database named in the URL if it is missing (pytest-django creates test_<name> beside it)."""
    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    admin_url = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


REPORTS = Path(tempfile.mkdtemp(prefix="incident-tests-"))
TOTALS = {"passed": 0, "failed": 0, "skipped": 0}


def pytest(name: str, env: dict[str, str], args: list[str]) -> int:
    report = REPORTS / f"{name}.xml"
    code = subprocess.call([sys.executable, "-m", "pytest", f"--junitxml={report}", *args], env=env)
    if report.exists():
        for suite in ET.parse(report).getroot().iter("testsuite"):  # noqa: S314 (our own pytest report)
            tests, skipped = int(suite.get("tests", 0)), int(suite.get("skipped", 0))
            failed = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
            TOTALS["failed"] += failed
            TOTALS["skipped"] += skipped
            TOTALS["passed"] += tests - skipped - failed
    return code


def summary(note: str = "") -> None:
    counts = f"{TOTALS['passed']} passed, {TOTALS['failed']} failed, {TOTALS['skipped']} skipped"
    print(counts, flush=True)
    if note:
        print(note, flush=True)


def banner(text: str) -> None:
    print(f"\n{'=' * 78}\n{text}\n{'=' * 78}", flush=True)


def main() -> int:
    args = sys.argv[1:]
    in_ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
    base = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}

    banner("Pass 1 of 2: embedded default (SQLite, in-memory channel layer and presence)")
    embedded = pytest("embedded", base, args)

    database_url = os.environ.get("TEST_DATABASE_URL", DEFAULT_DATABASE_URL)
    redis_url = os.environ.get("TEST_REDIS_URL", DEFAULT_REDIS_URL)
    problems = [p for p in (reachable(database_url), reachable(redis_url)) if p]
    if problems:
        message = "Pass 2 (PostgreSQL + Redis) SKIPPED: service unreachable: " + "; ".join(problems)
        banner(message)
        if in_ci:
            print("CI=true: the production stack must be tested. Failing.", file=sys.stderr)
            return 1
        summary("(the embedded pass only: the production-stack pass was SKIPPED, see above)")
        return embedded

    ensure_database(database_url)
    banner(f"Pass 2 of 2: production stack (PostgreSQL {urlparse(database_url).path}, Redis {redis_url})")
    production = pytest(
        "production",
        {
            **base,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            # Keys of this run only, so concurrent runs and stale keys cannot meet.
            "REDIS_PREFIX": f"incident-test-{os.getpid()}-{int(time.time())}",
        },
        args,
    )
    banner(
        f"Embedded pass: {'passed' if embedded == 0 else 'FAILED'}; "
        f"production-stack pass: {'passed' if production == 0 else 'FAILED'}"
    )
    summary()
    # pytest's exit 5 means "no tests collected": a filter that selects nothing in one pass is fine.
    codes = [code for code in (embedded, production) if code != 5]
    if not codes:
        return 5
    return max(codes)


if __name__ == "__main__":
    sys.exit(main())
