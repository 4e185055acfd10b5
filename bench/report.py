"""Markdown tables (and the fan-out chart) from the JSON results of a sitting.

    .venv/bin/python -m bench.report .bench-results/2026-11-28 \\
        --references .bench-results/2026-11-28/references.jsonl --chart docs/benchmarks-fanout.png

One row per run, as the runs came (no averaging hides a bad run); the chart
plots, per version and room size, the median over the runs of each run's
median all-received time (REST change → the LAST socket), with bars from the
best to the worst run, beside the reference servers' send → last socket.
"""

import argparse
import json
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any


def load(outdir: Path) -> list[dict[str, Any]]:
    runs = []
    for path in sorted(outdir.glob("*.json")):
        data = json.loads(path.read_text())
        if "result" in data:
            data["file"] = path.name
            runs.append(data)
    return runs


def rep_of(run: dict[str, Any]) -> str:
    name = run["file"].rsplit("-r", 1)
    return name[1].split(".")[0] if len(name) == 2 else "?"


def load_avg(run: dict[str, Any]) -> str:
    return f"{run['machine_before']['loadavg'][0]:.1f}→{run.get('machine_after', {}).get('loadavg', ['?'])[0]}"


def d4(d: dict[str, Any]) -> str:
    return f"{d['p50']} / {d['p95']} / {d['p99']} / {d['max']}" if d.get("n") else "—"


def where(run: dict[str, Any]) -> str:
    return f"{run['label']} · {run['stack']} · {run['servers']}p"


def cpu(u: dict[str, Any]) -> str:
    """Server CPU (% of a core, all processes) and, where measured, how long it waited for a CPU."""
    waits = [p["cpu_wait_pct"] for p in u["per_process"] if p.get("cpu_wait_pct") is not None]
    waited = f", waited {max(waits)}%" if waits else ""
    return f"{u['cpu_pct_total']}%{waited}"


def table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


Column = tuple[str, Callable[[dict[str, Any]], Any]]


def runs_table(
    runs: list[dict[str, Any]],
    columns: list[Column],
    results: Callable[[dict[str, Any]], list[dict[str, Any]]] = lambda run: [run["result"]],
) -> str:
    """One row per result of each run: which version and run first, the machine's load average last."""
    header = ["version · stack · processes", "run", *[name for name, _ in columns], "load avg"]
    rows = [
        [where(run), rep_of(run), *[value(result) for _, value in columns], load_avg(run)]
        for run in runs
        for result in results(run)
    ]
    return table(header, rows)


def lost_dup(r: dict[str, Any]) -> str:
    return f"{r['integrity']['lost']} / {r['integrity']['dup']}"


def fanout_rows(runs: list[dict[str, Any]]) -> str:
    return runs_table(
        runs,
        [
            ("sockets", lambda r: r["size"]),
            ("change → LAST socket p50 / p95 / p99 / max ms", lambda r: d4(r["all_received_ms"])),
            ("→ first socket p50 / p95 / p99 / max ms", lambda r: d4(r["first_received_ms"])),
            ("deliveries", lambda r: f"{r['deliveries']}/{r['expected_deliveries']}"),
            ("deliveries/s", lambda r: r["deliveries_per_s"]),
            ("lost / dup", lost_dup),
            ("server CPU · RSS", lambda r: f"{cpu(r['server'])} · {r['server']['rss_mb_total']} MB"),
        ],
        results=lambda run: [{"size": size, **r} for size, r in run["result"]["sizes"].items()],
    )


def joinstorm_rows(runs: list[dict[str, Any]]) -> str:
    def next_change(r: dict[str, Any]) -> str:
        ms = r["next_change_all_received_ms"]
        return f"{ms} ms" if ms is not None else "never"

    def presence_frames(r: dict[str, Any]) -> str:
        return f"{r['integrity']['presence_frames']} ({r['integrity']['presence_bytes'] / 1e6:.1f} MB)"

    return runs_table(
        runs,
        [
            ("users", lambda r: r["users"]),
            ("all acked", lambda r: f"{r['all_acked_s']} s"),
            ("handshake retries", lambda r: f"{r['handshake_retries']} {r['errors'] or ''}".strip()),
            ("gave up", lambda r: r["failed"]),
            ("next change → all", next_change),
            ("got it", lambda r: f"{r['next_change_received']}/{r['next_change_expected']}"),
            ("presence quiet after", lambda r: f"{r['presence_settled_s']} s"),
            ("presence frames", presence_frames),
            ("server peak RSS", lambda r: f"{r['server']['peak_rss_mb_max']} MB"),
        ],
    )


def rooms_rows(runs: list[dict[str, Any]]) -> str:
    return runs_table(
        runs,
        [
            ("changes/s", lambda r: f"{r['changes_per_s']} of {r['target_changes_per_s']}"),
            ("deliveries", lambda r: f"{r['deliveries']}/{r['expected_deliveries']}"),
            ("deliveries/s per process", lambda r: r["deliveries_per_s_per_process"]),
            ("delivery p50 / p95 / p99 / max ms", lambda r: d4(r["delivery_ms"])),
            ("lost / dup", lost_dup),
            ("server CPU · RSS", lambda r: f"{cpu(r['server'])} · {r['server']['rss_mb_total']} MB"),
        ],
    )


def idle_rows(runs: list[dict[str, Any]]) -> str:
    return runs_table(
        runs,
        [
            ("sockets", lambda r: r["sockets"]),
            ("rooms", lambda r: r["rooms"]),
            ("server CPU", lambda r: f"{r['server']['cpu_pct_total']}% over {r['server']['window_s']} s"),
            ("server RSS", lambda r: f"{r['server']['rss_mb_total']} MB (peak {r['server']['peak_rss_mb_max']})"),
            ("open", lambda r: f"{r['integrity']['open_sockets']}/{r['integrity']['sockets']}"),
        ],
    )


def writes_rows(runs: list[dict[str, Any]]) -> str:
    return runs_table(
        runs,
        [
            ("writers", lambda r: r["writers"]),
            ("accepted/s", lambda r: r["accepted_per_s"]),
            ("request p50 / p95 / p99 / max ms", lambda r: d4(r["request_ms"])),
            ("errors", lambda r: r["errors"] or 0),
            ("seqs gapless", lambda r: r["seqs_gapless"]),
            ("server CPU", lambda r: cpu(r["server"])),
        ],
    )


def slow_rows(runs: list[dict[str, Any]]) -> str:
    def rss(r: dict[str, Any]) -> str:
        mb = [x for _, x in r["server_rss_mb_over_time"]] or [0]
        return f"{mb[0]} → {max(mb)} → {mb[-1]} MB"

    return runs_table(
        runs,
        [
            ("sockets", lambda r: f"{r['sockets']} ({r['slow_sockets']} slow)"),
            ("readers, all reading: p50 / p95 / p99 / max ms", lambda r: d4(r["phases"]["all_reading"]["delivery_ms"])),
            ("readers, 5% stopped: p50 / p95 / p99 / max ms", lambda r: d4(r["phases"]["slow_stopped"]["delivery_ms"])),
            ("p99 change", lambda r: f"{r['readers_delivery_p99_change_pct']}%"),
            ("server RSS start → max → end", rss),
            ("slow sockets", lambda r: f"{r['slow']['closed']} closed, {r['slow']['received']} received"),
            ("readers lost / dup", lost_dup),
        ],
    )


def reference_rows(refs: list[dict[str, Any]]) -> str:
    rows = [
        [
            r.get("server"),
            r.get("rep"),
            r.get("N"),
            r.get("fanout_all_ms_median"),
            r.get("fanout_all_ms_max"),
            r.get("burst_deliveries_per_s"),
            r.get("server_peak_rss_mb"),
            (r.get("lat_missing_deliveries") or 0) + (r.get("burst_missing_deliveries") or 0),
            f"{r['machine_before']['loadavg'][0]:.1f}" if "machine_before" in r else "",
        ]
        for r in refs
    ]
    return table(
        [
            "reference server",
            "pass",
            "sockets",
            "send → LAST socket median ms",
            "max ms",
            "burst deliveries/s",
            "peak RSS MB",
            "missing",
            "load avg (sitting start)",
        ],
        rows,
    )


def chart(
    runs: list[dict[str, Any]], refs: list[dict[str, Any]], path: Path, title: str, names: dict[str, str]
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, dict[int, list[float]]] = {}
    for run in runs:
        if run["scenario"] != "fanout":
            continue
        label = names.get(run["label"], run["label"])
        name = f"{label} ({run['stack']}, {run['servers']} daphne), REST → last socket"
        for size, r in run["result"]["sizes"].items():
            if r["all_received_ms"].get("n"):
                series.setdefault(name, {}).setdefault(int(size), []).append(r["all_received_ms"]["p50"])
    for r in refs:
        if isinstance(r.get("fanout_all_ms_median"), int | float):
            name = f"{r['server']}, send → last socket"
            series.setdefault(name, {}).setdefault(int(r["N"]), []).append(float(r["fanout_all_ms_median"]))
    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=110)
    for name, by_size in series.items():
        sizes = sorted(by_size)
        mid = [statistics.median(by_size[n]) for n in sizes]
        low = [m - min(by_size[n]) for m, n in zip(mid, sizes, strict=True)]
        high = [max(by_size[n]) - m for m, n in zip(mid, sizes, strict=True)]
        dashed = "send →" in name
        ax.errorbar(sizes, mid, yerr=[low, high], marker="o", capsize=3, linestyle="--" if dashed else "-", label=name)
    targets = ((45, "1,000: median target 45 ms"), (100, "1,000: p99 target 100 ms"), (500, "5,000: p99 target 500 ms"))
    for y, text in targets:
        ax.axhline(y, color="grey", linewidth=0.8, linestyle=":")
        ax.text(4000, y * 1.04, text, color="grey", fontsize=7)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks([100, 1000, 5000], ["100", "1,000", "5,000"])
    ax.set_xlabel("sockets in the room")
    ax.set_ylabel("one change → the LAST socket has it (ms)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("outdir", nargs="+")
    parser.add_argument("--references", action="append", default=[], help="bench/references.py JSON lines")
    parser.add_argument("--chart", help="write the fan-out chart (PNG) here")
    parser.add_argument("--name", action="append", default=[], help="LABEL=what the chart calls it")
    parser.add_argument(
        "--title",
        default="Room fan-out, one 2-core machine: median over runs of each run's median (bars: best, worst run)",
    )
    args = parser.parse_args()
    runs = [run for outdir in args.outdir for run in load(Path(outdir))]
    refs = [json.loads(line) for ref in args.references for line in Path(ref).read_text().splitlines() if line.strip()]
    makers = {
        "fanout": fanout_rows,
        "joinstorm": joinstorm_rows,
        "rooms": rooms_rows,
        "idle": idle_rows,
        "writes": writes_rows,
        "slow": slow_rows,
    }
    for scenario, maker in makers.items():
        chosen = [r for r in runs if r["scenario"] == scenario]
        if chosen:
            chosen.sort(key=lambda r: (r["stack"], r["servers"], r["file"]))
            print(f"\n#### {scenario}\n")
            print(maker(chosen))
    if refs:
        print("\n#### references\n")
        print(reference_rows(refs))
    if args.chart:
        names = dict(n.split("=", 1) for n in args.name)
        chart(runs, refs, Path(args.chart), args.title, names)


if __name__ == "__main__":
    main()
