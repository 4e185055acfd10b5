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


def fanout_rows(runs: list[dict[str, Any]]) -> str:
    rows = []
    for run in runs:
        for size, r in run["result"]["sizes"].items():
            i, s = r["integrity"], r["server"]
            rows.append(
                [
                    where(run),
                    rep_of(run),
                    size,
                    d4(r["all_received_ms"]),
                    d4(r["first_received_ms"]),
                    f"{r['deliveries']}/{r['expected_deliveries']}",
                    r["deliveries_per_s"],
                    f"{i['lost']} / {i['dup']}",
                    f"{cpu(s)} · {s['rss_mb_total']} MB",
                    load_avg(run),
                ]
            )
    return table(
        [
            "version · stack · processes",
            "run",
            "sockets",
            "change → LAST socket p50 / p95 / p99 / max ms",
            "→ first socket p50 / p95 / p99 / max ms",
            "deliveries",
            "deliveries/s",
            "lost / dup",
            "server CPU · RSS",
            "load avg",
        ],
        rows,
    )


def joinstorm_rows(runs: list[dict[str, Any]]) -> str:
    rows = []
    for run in runs:
        r = run["result"]
        rows.append(
            [
                where(run),
                rep_of(run),
                r["users"],
                f"{r['all_acked_s']} s",
                f"{r['handshake_retries']} {r['errors'] or ''}".strip(),
                r["failed"],
                f"{r['next_change_all_received_ms']} ms" if r["next_change_all_received_ms"] is not None else "never",
                f"{r['next_change_received']}/{r['next_change_expected']}",
                f"{r['presence_settled_s']} s",
                f"{r['integrity']['presence_frames']} ({r['integrity']['presence_bytes'] / 1e6:.1f} MB)",
                f"{r['server']['peak_rss_mb_max']} MB",
                load_avg(run),
            ]
        )
    return table(
        [
            "version · stack · processes",
            "run",
            "users",
            "all acked",
            "handshake retries",
            "gave up",
            "next change → all",
            "got it",
            "presence quiet after",
            "presence frames",
            "server peak RSS",
            "load avg",
        ],
        rows,
    )


def rooms_rows(runs: list[dict[str, Any]]) -> str:
    rows = []
    for run in runs:
        r = run["result"]
        rows.append(
            [
                where(run),
                rep_of(run),
                f"{r['changes_per_s']} of {r['target_changes_per_s']}",
                f"{r['deliveries']}/{r['expected_deliveries']}",
                r["deliveries_per_s_per_process"],
                d4(r["delivery_ms"]),
                f"{r['integrity']['lost']} / {r['integrity']['dup']}",
                f"{cpu(r['server'])} · {r['server']['rss_mb_total']} MB",
                load_avg(run),
            ]
        )
    return table(
        [
            "version · stack · processes",
            "run",
            "changes/s",
            "deliveries",
            "deliveries/s per process",
            "delivery p50 / p95 / p99 / max ms",
            "lost / dup",
            "server CPU · RSS",
            "load avg",
        ],
        rows,
    )


def idle_rows(runs: list[dict[str, Any]]) -> str:
    rows = []
    for run in runs:
        r = run["result"]
        rows.append(
            [
                where(run),
                rep_of(run),
                r["sockets"],
                r["rooms"],
                f"{r['server']['cpu_pct_total']}% over {r['server']['window_s']} s",
                f"{r['server']['rss_mb_total']} MB (peak {r['server']['peak_rss_mb_max']})",
                f"{r['integrity']['open_sockets']}/{r['integrity']['sockets']}",
                load_avg(run),
            ]
        )
    return table(
        ["version · stack · processes", "run", "sockets", "rooms", "server CPU", "server RSS", "open", "load avg"],
        rows,
    )


def writes_rows(runs: list[dict[str, Any]]) -> str:
    rows = []
    for run in runs:
        r = run["result"]
        rows.append(
            [
                where(run),
                rep_of(run),
                r["writers"],
                r["accepted_per_s"],
                d4(r["request_ms"]),
                r["errors"] or 0,
                r["seqs_gapless"],
                cpu(r["server"]),
                load_avg(run),
            ]
        )
    return table(
        [
            "version · stack · processes",
            "run",
            "writers",
            "accepted/s",
            "request p50 / p95 / p99 / max ms",
            "errors",
            "seqs gapless",
            "server CPU",
            "load avg",
        ],
        rows,
    )


def slow_rows(runs: list[dict[str, Any]]) -> str:
    rows = []
    for run in runs:
        r = run["result"]
        a, b = r["phases"]["all_reading"], r["phases"]["slow_stopped"]
        rss = [x for _, x in r["server_rss_mb_over_time"]] or [0]
        rows.append(
            [
                where(run),
                rep_of(run),
                f"{r['sockets']} ({r['slow_sockets']} slow)",
                d4(a["delivery_ms"]),
                d4(b["delivery_ms"]),
                f"{r['readers_delivery_p99_change_pct']}%",
                f"{rss[0]} → {max(rss)} → {rss[-1]} MB",
                f"{r['slow']['closed']} closed, {r['slow']['received']} received",
                f"{r['integrity']['lost']} / {r['integrity']['dup']}",
                load_avg(run),
            ]
        )
    return table(
        [
            "version · stack · processes",
            "run",
            "sockets",
            "readers, all reading: p50 / p95 / p99 / max ms",
            "readers, 5% stopped: p50 / p95 / p99 / max ms",
            "p99 change",
            "server RSS start → max → end",
            "slow sockets",
            "readers lost / dup",
            "load avg",
        ],
        rows,
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
