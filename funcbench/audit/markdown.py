"""The audit's report as markdown (the tables docs/measurements.md quotes)."""
from __future__ import annotations


def _count(value) -> str:
    return "n/a" if value is None or value != value else f"{value:,.0f}"


def _ms(seconds) -> str:
    if seconds is None or seconds != seconds:
        return "n/a"
    return f"{seconds * 1e3:.3f}" if seconds < 0.01 else f"{seconds * 1e3:.1f}"


def _section(title: str, note: str, columns, left: int = 1, text=()) -> list:
    """A heading, the line saying how it was measured, and a table's head: the first ``left``
    columns and those named in ``text`` left-aligned, the numbers right-aligned."""
    align = ["---" if index < left or name in text else "---:" for index, name in enumerate(columns)]
    return [f"### {title}", "", note, "", "| " + " | ".join(columns) + " |", "|" + "|".join(align) + "|"]


def markdown(report: dict) -> str:
    lines = [f"Audit of {report['commit'][:8]} ({report['device']}, preset {report['preset']}), "
             f"started {report['started']}, load at start {report['load_start']}.", ""]
    if "fidelity" in report:
        f = report["fidelity"]
        lines += _section("Fidelity: asv time_op / torch.utils.benchmark",
                          f"`{f['command']}` (asv run: {f['asv_wall_s']:.0f} s, load {f['load']})",
                          ["cell", "tier", "asv median (ms)", "torch blocked_autorange median (ms)", "ratio",
                           "overhead (µs)", "torch timeit(1) median (ms)", "ratio to it", "asv samples",
                           "load (1 min)"], left=2)
        for r in sorted(f["rows"], key=lambda r: (r["tier"], r["cell"])):
            lines.append(f"| {r['cell']} | {r['tier']} | {_ms(r['asv_s'])} | {_ms(r['torch_s'])} | "
                         f"{r['ratio']:.3f} | {r['overhead_us']:+.0f} | {_ms(r['torch_single_s'])} | "
                         f"{r['ratio_single']:.3f} | {r['samples']} | {r['load'].split('/')[0]} |")
        s = f["summary"]
        med_ratio = "n/a" if s["median_ratio_ge_1ms"] is None else f"{s['median_ratio_ge_1ms']:.3f}"
        med_over = "n/a" if s["median_overhead_us_sub_ms"] is None else f"{s['median_overhead_us_sub_ms']:+.0f} µs"
        med_single = "n/a" if s["median_ratio_single_ge_1ms"] is None else f"{s['median_ratio_single_ge_1ms']:.3f}"
        over_single = "n/a" if s["median_overhead_us_sub_ms_single"] is None else f"{s['median_overhead_us_sub_ms_single']:+.0f} µs"
        lines += ["", f"Cells ≥ 1 ms: {s['in_goal_ge_1ms']}/{s['cells_ge_1ms']} within 0.95–1.05 of blocked_autorange "
                  f"(median ratio {med_ratio}), {s['in_goal_ge_1ms_single']}/{s['cells_ge_1ms']} of timeit(1) "
                  f"(median {med_single}); sub-ms cells: {s['cells_sub_ms']}, median overhead {med_over} "
                  f"vs blocked_autorange, {over_single} vs timeit(1).", ""]
        b = f.get("bracketed")
        if b and b["cells_ge_1ms"]:
            lo, hi = b["range_ge_1ms"]
            over = "n/a" if b["median_overhead_us_sub_ms"] is None else f"{b['median_overhead_us_sub_ms']:+.0f} µs"
            lines += [f"Bracketed (geometric mean of the asv runs before and after the reference, which "
                      f"cancels the machine's drift between them): cells ≥ 1 ms {b['in_goal_ge_1ms']}/"
                      f"{b['cells_ge_1ms']} within 0.95–1.05, median ratio {b['median_ratio_ge_1ms']:.3f}, "
                      f"range {lo:.3f}–{hi:.3f}; sub-ms cells median overhead {over}.", ""]
        h = f.get("harness")
        if h:
            lines += [f"Harness overhead per timed sample (no-op op, min of single calls): time_op "
                      f"{h['time_op_noop_us']:.2f} µs vs bare call {h['bare_noop_us']:.2f} µs = "
                      f"{h['overhead_us']:+.2f} µs.", ""]
    load = report.get("load") or {}
    if load.get("neighbours"):
        lines += [f"Load: {load['neighbours']} neighbour process(es) each keeping a core busy, during "
                  f"{'every run' if load['sides'] == 'both' else 'the after side runs only'}.", ""]
    if "clocks" in report:
        c = report["clocks"]
        lines += _section("Clocks: the calling thread's CPU time / wall time, per call", f"`{c['command']}` (load {c['load']})",
                          ["cell", "tier", "wall median (ms)", "CPU median (ms)", "CPU / wall (median per call)",
                           "CPU outside the thread", "calls"], left=2)
        for r in sorted(c["rows"], key=lambda r: -r["wall_s"]):
            lines.append(f"| {r['cell']} | {r['tier']} | {_ms(r['wall_s'])} | {_ms(r['cpu_s'])} | {r['ratio']:.4f} | "
                         f"{r['unseen']:.2%} | {r['calls']} |")
        s = c["summary"]
        big = s["range_ge_1ms"] and f"{s['range_ge_1ms'][0]:.4f}–{s['range_ge_1ms'][1]:.4f}"
        small = s["range_sub_ms"] and f"{s['range_sub_ms'][0]:.4f}–{s['range_sub_ms'][1]:.4f}"
        lines += ["", f"Cells ≥ 1 ms: {s['within_1pc_ge_1ms']}/{s['cells_ge_1ms']} within 0.99–1.01 (range {big}); "
                  f"sub-ms cells: {s['cells_sub_ms']} (range {small}).", ""]
    if "noise" in report:
        n = report["noise"]
        lines += _section(f"Noise: same code run twice, `asv compare --factor {n.get('factor', 1.1)}`",
                          f"`{n['command']}` (runs: {n['wall_s'][0]:.0f} s, {n['wall_s'][1]:.0f} s; load {n['load']})",
                          ["benchmark", "compared", "false regressions", "false improvements",
                           f"beyond {n.get('factor', 1.1)}× but not significant", "not comparable (versions differ)"])
        for method, c in sorted(n["summary"].items()):
            lines.append(f"| {method} | {c['compared']} | {c['false_regressions']} | {c['false_improvements']} | "
                         f"{c['not_significant_beyond_factor']} | {c['not_comparable']} |")
        lines += ["", "| benchmark | rows beyond 1.03× either way | beyond 1.05× | largest |", "|---|---:|---:|---|"]
        for method, c in sorted(n["summary"].items()):
            worst = c.get("worst")
            lines.append(f"| {method} | {c.get('beyond_1_03', 'n/a')} | {c.get('beyond_1_05', 'n/a')} | "
                         + (f"{worst[2]:.3f} ({worst[0]})" if worst else "—") + " |")
        agreement = n.get("instructions")
        if agreement:
            lines += ["", f"Instruction counts, run 2 / run 1: {agreement['within_0_1']}/{agreement['cells']} cells within "
                      f"0.1 %, {agreement['within_0_2']}/{agreement['cells']} within 0.2 %; largest difference "
                      f"{agreement['worst'] * 100:+.3f} % ({agreement['worst_cell']})."]
        if n["flagged"]:
            lines += ["", "Flagged: " + "; ".join(f"{r['mark']} {r['ratio']} {r['name']}" for r in n["flagged"])]
        lines.append("")
    if "interleave" in report:
        i = report["interleave"]
        lines += _section("One torch build twice as two existing environments: separate runs vs `funcbench interleave`",
                          f"`{i['command']}`", ["runs", "clock", "rows", "significant (asv's test)",
                                                "significant beyond the factor", "any beyond 1.03×", "any beyond 1.05×",
                                                "largest", "median abs change", "load"], left=2, text=("largest", "load"))
        for label in ("separate", "interleaved"):
            entry = i.get(label) or {}
            for metric in ("cpu", "time"):
                r = entry.get(metric)
                if not r:
                    continue
                median = "n/a" if r["median_abs_change"] is None else f"{r['median_abs_change'] * 100:.1f} %"
                lines.append(f"| {label} | {metric} | {r['rows']} | {r['significant']} | {r['significant_beyond']} "
                             f"(> {r['factor']}x) | {r.get('any_beyond_1_03', 'n/a')} | {r.get('any_beyond_1_05', 'n/a')} "
                             f"| {r.get('worst') or '—'} | {median} | {entry['load']} |")
        for label in ("separate", "interleaved"):
            for metric, r in (i.get(label) or {}).items():
                if isinstance(r, dict) and r.get("beyond"):
                    lines += ["", f"Significant beyond the factor, {label}, {metric}: " + "; ".join(r["beyond"])]
        lines.append("")
    if "sensitivity" in report:
        s = report["sensitivity"]
        method, factor = s.get("method", "time_op"), s.get("compare_factor", 1.1)
        unit, show = ("instructions", _count) if method == "track_instructions" else ("ms", _ms)
        gate = s.get("gate")
        gated = [f"`funcbench compare --fail-above {gate}` failed"] if gate else []
        lines += _section(f"Sensitivity: injected work vs base, {method}, `asv compare --factor {factor}`",
                          f"`{s['command']}` (load {s['load']})",
                          ["cell", "factor", "asv flagged", *gated, "asv ratios", f"base ({unit})", "load (1 min)"],
                          text=("asv ratios", f"base ({unit})", "load (1 min)"))
        for r in s["rows"]:
            control = " (control)" if r["factor"] == 1.0 else ""
            gated = f" {r.get('gated', 0)}/{r['reps']} |" if gate else ""
            lines.append(f"| {r['cell']} | {r['factor']}{control} | {r['flagged']}/{r['reps']} |{gated} "
                         f"{', '.join(r['ratios'])} | {', '.join(show(b) for b in r['base'])} | "
                         f"{', '.join(map(str, r['loads']))} |")
        lines += ["", "Smallest factor flagged in every repetition (and every larger one): " +
                  ", ".join(f"{c}: {v}" for c, v in s["smallest_reliable"].items()), ""]
    if "cost" in report:
        c = report["cost"]
        lines += _section("Cost", f"`{c['command']}`", ["run", "wall (s)", "in benchmark processes (s)",
                                                         "timed samples (s)", "outside samples", "load"], text=("load",))
        for label, r in c["runs"].items():
            lines.append(f"| {label} | {r['wall_s']:.0f} | {r.get('benchmark_durations_s', float('nan')):.0f} | "
                         f"{r.get('timed_samples_s', float('nan')):.1f} | "
                         f"{'n/a' if r.get('outside_samples_share') is None else format(r['outside_samples_share'], '.0%')} | "
                         f"{r['load']} |")
        for label, r in c["runs"].items():
            if r.get("per_tier"):
                lines += ["", f"Per tier ({label}): " + "; ".join(
                    f"{t}: {v['asv_duration_s']:.0f} s in asv, {v['timed_s']:.1f} s timed"
                    for t, v in sorted(r["per_tier"].items()))]
        lines.append("")
    if "explain" in report:
        e, c = report["explain"], report["explain"]["cost"]
        lines += [f"### Explaining counts: what keeping profiles costs, and an injected op's kernel among the movers",
                  "", f"`{e['command']}` (load {e['load']})", "",
                  f"Light tier, {c['cells']} cells: {c['functions']:,} (function, count) pairs in {c['bytes']:,} bytes; "
                  f"counting {c['counting_s']:.1f} s; reading the dumps' totals {c['totals_only_s']:.2f} s, with the "
                  f"per-function counts and demangling {c['with_profiles_s']:.2f} s, writing the file "
                  f"{c['write_s']:.2f} s: {c['added_share']:.1%} added to the counting; every cell's functions sum "
                  f"to its count: {'yes' if c['sums_exact'] else 'NO'}.", "",
                  "| repetition | op | cell | kernel's rank among the movers | its share of the Δ | Δ (instructions) "
                  "| lines sum to the totals |", "|---:|---|---|---:|---:|---:|---|"]
        for r in e["rows"]:
            if r.get("error"):
                lines.append(f"| {r['rep']} | {r['op']} | {r['cell']} | failed: {r['error']} | | | |")
                continue
            share = "n/a" if r["share"] is None else f"{r['share']:.1%}"
            lines.append(f"| {r['rep']} | {r['op']} | {r['cell']} | {r['rank'] or 'absent'} | {share} | "
                         f"{r['delta']:+,} | {'yes' if r['sums_exact'] else 'NO'} |")
        top3 = sum(1 for r in e["rows"] if r["in_top"])
        lines += ["", f"The injected op's kernel among the top 3 movers: {top3}/{len(e['rows'])}.", ""]
    if "gpu" in report:
        g = report["gpu"]
        lines += ["### GPU: CUDA events vs synchronised wall time", ""]
        if g is None:
            lines += ["no CUDA device here", ""]
        else:
            lines += ["| cell | events (ms) | wall (ms) | wall/events |", "|---|---:|---:|---:|"]
            lines += [f"| {r['cell']} | {_ms(r['events_s'])} | {_ms(r['wall_s'])} | {r['wall_over_events']:.3f} |"
                      if "error" not in r else f"| {r['cell']} | failed: {r['error']} | | |" for r in g]
            lines.append("")
    return "\n".join(lines)
