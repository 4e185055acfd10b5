"""Several versions of the platform, the same scenarios, interleaved in one sitting.

    .venv/bin/python -m bench.sitting --tree baseline=/work/wt/baseline --tree new=. \\
        --reps 3 --outdir .bench-results/2026-11-28 \\
        --run "fanout --stack production --sizes 100,1000" --run "writes --stack production"

Each `--run` is the argument list of one bench/live.py command. Per
repetition, every run is made once for every tree, the order of the trees
alternating from one repetition to the next (A B, then B A, ...), so the
drift of a shared machine's load falls on all of them alike. Results go to
OUTDIR/<scenario>-<stack>-<servers>p-<label>-r<rep>.json, the printed output to
.log beside it. `--budget` (minutes) stops starting new runs after that long;
`--run-timeout` bounds each run.
"""

import argparse
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.harness import BASE_DIR


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", action="append", required=True, help="LABEL=PATH[:PYTHON]")
    parser.add_argument("--run", action="append", required=True, help="bench.live arguments, quoted")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--outdir", required=True)
    parser.add_argument("--budget", type=float, default=120, help="minutes; no run starts after that")
    parser.add_argument("--run-timeout", type=float, default=1200, help="seconds per run")
    args = parser.parse_args()
    trees = []
    for spec in args.tree:
        label, _, rest = spec.partition("=")
        path, _, python = rest.partition(":")
        trees.append((label, path, python))
    outdir = Path(args.outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + args.budget * 60
    for rep in range(1, args.reps + 1):
        for run in args.run:
            words = shlex.split(run)
            stack = words[words.index("--stack") + 1] if "--stack" in words else "embedded"
            servers = words[words.index("--servers") + 1] if "--servers" in words else "1"
            order = trees if rep % 2 else list(reversed(trees))
            for label, path, python in order:
                if time.monotonic() > deadline:
                    print(f"budget spent: not starting {words[0]} {label} r{rep}", flush=True)
                    continue
                # The run's other arguments are in the name, so two runs of one scenario never share a file.
                rest = [w for w in words[1:] if w not in ("--stack", stack, "--servers", servers)]
                extra = "".join(c if c.isalnum() or c in ".," else "-" for c in "-".join(rest)).strip("-")
                name = "-".join(x for x in (words[0], stack, f"{servers}p", extra, label, f"r{rep}") if x)
                command = [sys.executable, "-m", "bench.live", *words, "--tree", path, "--label", label]
                command += ["--out", str(outdir / f"{name}.json")]
                if python:
                    command += ["--python", python]
                print(f"== {name}: {shlex.join(command)}", flush=True)
                started = time.monotonic()
                with open(outdir / f"{name}.log", "w") as log:
                    # A session of its own, so a run over its time is stopped with its servers and clients.
                    process = subprocess.Popen(
                        command, cwd=BASE_DIR, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                    )
                    try:
                        code: int | str = process.wait(args.run_timeout)
                    except subprocess.TimeoutExpired:
                        os.killpg(process.pid, signal.SIGTERM)
                        try:
                            process.wait(20)
                        except subprocess.TimeoutExpired:
                            os.killpg(process.pid, signal.SIGKILL)
                            process.wait(10)
                        code = "timeout"
                print(f"   {name}: exit {code} after {time.monotonic() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
