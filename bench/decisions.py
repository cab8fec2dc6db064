"""Decision-quality benchmark (`make bench-decisions`): daily count streams with known truth, many
seeds, the decisions flywheel would take night after night, before and after issue 14.

    python -m bench.decisions            # = make bench-decisions: prints the table, writes BENCHMARKS.md
    python -m bench.decisions --quick    # a small run (fewer seeds), printed only unless --out

The simulator: one stream is one scenario's daily counts; reviewed events a day ~ Poisson(N) for
N = 200 or 1,000, accepted-as-is ~ Binomial(reviewed, p_t), events = reviewed / 0.8 (rounded),
severe failures ~ Binomial(events, q). Every night the drift rules run on the counts up to that
night, as the nightly run would on the stored daily marts:
- "after": `flywheel.signals.sequential.monitor_rate` with the default policy's drift section, on
  the lookback the pipeline reads (current + baseline windows, 35 days), for the accepted-as-is
  rate (down) and the severe-failure rate (up), alert = either monitor at its alarm level;
- "before": the old scenario-level rules (`bench/decisions_legacy.py`: z-tests with BH over the
  stream's two tests, alert from a 15-point change; the 7-day CUSUM in standard errors).
Measured:
1. False alarms on stationary streams: 35 days of history, then a quarter (90 nights); alert nights
   and alert episodes (runs of consecutive alert nights) per stream-quarter, over accepted rates
   0.60-0.97 and severe rates 0.02-0.10.
2. Detection delay for a drop of 3, 5 and 10 points of the accepted-as-is rate (from 0.85) after 35
   days of history: nights from the change until the first alert (1 = the night of the change's
   first day), median, 90th percentile and maximum over seeds ("> 30" where seeds were not alerted
   within the 30 nights watched), share detected within 30 nights; and, for bug 9, a 10-point drop
   on day 8 of a new deployment.
3. Confidence gates: `bench.decision_gates.gate_benchmark` (>= 1,000 windows a size).
4. Promotions of scenarios whose true accepted rate is below the 0.90 target (0.85, 0.88, 0.89; and
   0.92, 0.95 above it, to show promotions still happen): a quarter of nightly looks, the gates of
   `flywheel.signals.autonomy.scenario_gates` over the 7-day window, a promotion when `all_pass`
   held on each of the last `consecutive_days` nights; "after" = as in force, "anytime bound" = the
   same with the accepted gate on `sequential.anytime_lower_bound` instead of Wilson's.
"""

from __future__ import annotations

import argparse
import re
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from bench.decisions_legacy import legacy_alert
from flywheel.signals.policy import load_policy
from flywheel.signals.sequential import anytime_lower_bound, monitor_rate

REPO = Path(__file__).resolve().parents[1]
START, END = "<!-- bench-decisions:start -->", "<!-- bench-decisions:end -->"
HISTORY, QUARTER, REVIEW_SHARE = 35, 90, 0.8
STATIONARY = ((0.60, 0.10), (0.75, 0.05), (0.85, 0.05), (0.92, 0.03), (0.97, 0.02))
DROPS, SIZES = (0.03, 0.05, 0.10), (200, 1000)
BELOW, ABOVE = (0.85, 0.88, 0.89), (0.92, 0.95)


def stream(rng: np.random.Generator, size: int, p: np.ndarray, q: float) -> dict[str, np.ndarray]:
    """Daily counts of one scenario with accepted-as-is rate p[t] and severe-failure rate q."""
    reviewed = rng.poisson(size, len(p))
    events = np.rint(reviewed / REVIEW_SHARE).astype(np.int64)
    return {"reviewed": reviewed, "accepted": rng.binomial(reviewed, p), "events": events,
            "severe": rng.binomial(events, q)}


def after_alert(s: dict[str, np.ndarray], night: int, policy) -> bool:
    """Whether the sequential monitors alert on `night`, over the lookback the pipeline reads."""
    d = policy.drift
    lo = max(0, night - policy.windows.current_days - policy.windows.baseline_days + 1)
    window = slice(lo, night + 1)
    for k, n, direction in ((s["accepted"], s["reviewed"], "down"), (s["severe"], s["events"], "up")):
        m = monitor_rate(k[window], n[window], direction, tuple(d.shifts), d.arl_days, d.min_reference_days,
                         d.min_sample, d.reference_z)
        if m.alarm:
            return True
    return False


def before_alert(s: dict[str, np.ndarray], night: int, policy) -> bool:
    return legacy_alert(s["accepted"], s["reviewed"], s["severe"], s["events"], night)


METHODS = {"before": before_alert, "after": after_alert}


def false_alarms(seeds: int, policy) -> list[dict]:
    """Alert nights and episodes per stream-quarter on stationary streams, per method and size."""
    rows = []
    for size in SIZES:
        for method, alert in METHODS.items():
            nights = episodes = streams = 0
            for seed in range(seeds):
                for j, (p, q) in enumerate(STATIONARY):
                    rng = np.random.default_rng([seed, size, j, 1])
                    s = stream(rng, size, np.full(HISTORY + QUARTER, p), q)
                    flags = [alert(s, night, policy) for night in range(HISTORY, HISTORY + QUARTER)]
                    nights += sum(flags)
                    episodes += sum(1 for i, f in enumerate(flags) if f and (i == 0 or not flags[i - 1]))
                    streams += 1
            rows.append({"method": method, "reviewed_per_day": size, "streams": streams,
                         "alert_nights_per_quarter": nights / streams, "episodes_per_quarter": episodes / streams})
    return rows


def _delay(s: dict[str, np.ndarray], change: int, alert, policy, horizon: int = 30) -> int | None:
    for night in range(change, min(change + horizon, len(s["reviewed"]))):
        if alert(s, night, policy):
            return night - change + 1
    return None


def detection(seeds: int, policy) -> list[dict]:
    """Nights to the first alert after a drop, per method, size and drop; plus a new deployment's."""
    rows = []
    cases = [(size, drop, HISTORY, "35 days of history") for size in SIZES for drop in DROPS]
    cases += [(size, 0.10, 7, "new deployment, drop on day 8") for size in SIZES]
    for size, drop, change, label in cases:
        for method, alert in METHODS.items():
            delays = []
            for seed in range(seeds):
                rng = np.random.default_rng([seed, size, int(drop * 100), change, 2])
                p = np.where(np.arange(change + 30) >= change, 0.85 - drop, 0.85)
                delays.append(_delay(stream(rng, size, p, 0.05), change, alert, policy))
            found = [d for d in delays if d is not None]
            censored = np.array([np.inf if d is None else d for d in delays])  # not detected: beyond the horizon
            rows.append({"method": method, "reviewed_per_day": size, "drop": drop, "history": label, "seeds": seeds,
                         "detected": len(found) / seeds,
                         "median": float(np.percentile(censored, 50, method="lower")),
                         "p90": float(np.percentile(censored, 90, method="higher")),
                         "max": float(censored.max()),
                         "within_2": sum(d <= 2 for d in found) / seeds})
    return rows


def promotions(seeds: int, policy) -> list[dict]:
    """Stream-quarters with at least one promotion recommended, per true rate, size and accepted gate."""
    from flywheel.signals.autonomy import scenario_gates

    target, need = policy.promotion.accept_target, policy.promotion.consecutive_days
    cur = policy.windows.current_days
    rows = []
    for size in SIZES:
        for p in BELOW + ABOVE:
            promoted = {"after": 0, "anytime bound": 0}
            for seed in range(seeds):
                rng = np.random.default_rng([seed, size, int(p * 1000), 3])
                s = stream(rng, size, np.full(cur + QUARTER, p), 0.005)
                ops = rng.binomial(s["events"], 0.005)
                passed = {"after": [], "anytime bound": []}
                for night in range(cur - 1, cur + QUARTER):
                    w = slice(night - cur + 1, night + 1)
                    counts = {"events": int(s["events"][w].sum()), "reviewed": int(s["reviewed"][w].sum()),
                              "accepted": int(s["accepted"][w].sum()), "severe_failures": int(s["severe"][w].sum()),
                              "errors": int(ops[w].sum()), "timeouts": 0, "fallbacks": 0}
                    row = scenario_gates(counts, policy, "shadow", None, False, target)
                    passed["after"].append(bool(row["all_pass"]))
                    anytime_ok = anytime_lower_bound(counts["accepted"], counts["reviewed"], 0.05) >= target
                    passed["anytime bound"].append(bool(row["all_pass"]) and anytime_ok)
                for rule, flags in passed.items():
                    if any(all(flags[i - need + 1:i + 1]) for i in range(need - 1, len(flags))):
                        promoted[rule] += 1
            for rule, count in promoted.items():
                rows.append({"rule": rule, "reviewed_per_day": size, "true_rate": p, "below_target": p < target,
                             "stream_quarters": seeds, "promoted": count})
    return rows


def gates(quick: bool) -> list[dict] | None:
    try:
        from bench.decision_gates import gate_benchmark
    except ImportError:
        return None
    return gate_benchmark(windows=1000, quick=quick)


def _f(v, spec: str = ".2f") -> str:
    if v is None:
        return "–"
    return "> 30" if v == float("inf") else format(v, spec)


def render(res: dict, info: dict) -> tuple[str, list[tuple[str, bool, str]]]:
    """The BENCHMARKS.md section and the goals (name, met, figure)."""
    fa = {(r["method"], r["reviewed_per_day"]): r for r in res["false_alarms"]}
    lines = [START, "## Decision quality (`make bench-decisions`)", "",
             f"`{info['command']}` at {info['commit']} on {info['date']} ({info['machine']}), {info['seconds']:.0f} s; "
             f"{info['seeds_fa']} seeds x {len(STATIONARY)} stationary streams per size, {info['seeds_det']} seeds per "
             "detection case, simulated daily counts with known truth (bench/decisions.py says how). Before = the "
             "scenario-level drift rules until issue 14 (bench/decisions_legacy.py), after = the sequential monitors.",
             "", "### False alarms on stationary streams (per stream-quarter: 90 nightly looks)", "",
             "| reviewed/day | before: alert nights | before: episodes | after: alert nights | after: episodes |",
             "|---|---|---|---|---|"]
    for size in SIZES:
        b, a = fa[("before", size)], fa[("after", size)]
        lines.append(f"| {size} | {b['alert_nights_per_quarter']:.3f} | {b['episodes_per_quarter']:.3f} "
                     f"| {a['alert_nights_per_quarter']:.3f} | {a['episodes_per_quarter']:.3f} |")
    lines += ["", "### Detection delay (nights from the change to the first alert; 1 = the change's first night)", "",
              "| history | reviewed/day | drop | before: detected in 30 | before: median / p90 | after: detected in 30 "
              "| after: median / p90 / max | after: within 2 nights |", "|---|---|---|---|---|---|---|---|"]
    det = {(r["method"], r["reviewed_per_day"], r["drop"], r["history"]): r for r in res["detection"]}
    for (method, size, drop, hist), r in det.items():
        if method != "after":
            continue
        b = det[("before", size, drop, hist)]
        lines.append(f"| {hist} | {size} | {drop:.2f} | {b['detected']:.0%} | {_f(b['median'], '.0f')} / {_f(b['p90'], '.0f')} "
                     f"| {r['detected']:.0%} | {_f(r['median'], '.0f')} / {_f(r['p90'], '.0f')} / {_f(r['max'], '.0f')} "
                     f"| {r['within_2']:.0%} |")
    if res["gates"]:
        lines += ["", "### Confidence gates (bench/decision_gates.py: true acceptance 0.80 -> 0.97, target 0.95)", "",
                  "| method | reviewed/window | windows | gates | share of gates below target | violations per window "
                  "| stated level |", "|---|---|---|---|---|---|---|"]
        for r in res["gates"]:
            lines.append(f"| {r['method']} | {r['reviewed']} | {r['windows']} | {r['gates_recommended']} "
                         f"| {_f(r['violation_share'], '.1%')} | {r['violations_per_window']:.1%} | {_f(r['delta'])} |")
    lines += ["", "### Promotions (stream-quarters with a promotion recommended, target 0.90)", "",
              "| reviewed/day | true rate | below target | stream-quarters | in force (Wilson) | anytime bound |",
              "|---|---|---|---|---|---|"]
    pro = {(r["rule"], r["reviewed_per_day"], r["true_rate"]): r for r in res["promotions"]}
    for (rule, size, p), r in pro.items():
        if rule == "after":
            lines.append(f"| {size} | {p:.2f} | {'yes' if r['below_target'] else 'no'} | {r['stream_quarters']} "
                         f"| {r['promoted']} | {pro[('anytime bound', size, p)]['promoted']} |")
    goals = []
    worst = max(r["episodes_per_quarter"] for r in res["false_alarms"] if r["method"] == "after")
    worst_nights = max(r["alert_nights_per_quarter"] for r in res["false_alarms"] if r["method"] == "after")
    goals.append(("<= 1 false alarm per scenario-quarter", worst_nights <= 1,
                  f"after: at most {worst_nights:.3f} alert nights ({worst:.3f} episodes) per stream-quarter"))
    ten = det[("after", 1000, 0.10, "35 days of history")]
    goals.append(("10-point drop alerted within 2 days at 1,000 reviewed a day", ten["within_2"] == 1.0,
                  f"after: {ten['within_2']:.0%} of seeds within 2 nights (max {_f(ten['max'], '.0f')})"))
    if res["gates"]:
        after = [r for r in res["gates"] if r["method"] == "after"]
        ok = all(r["violations_per_window"] <= r["delta"] for r in after)
        goals.append(("gate violations at or below the stated level", ok,
                      ", ".join(f"{r['reviewed']}/window: {r['violations_per_window']:.1%} of windows "
                                f"(delta {r['delta']})" for r in after)))
    else:
        goals.append(("gate violations at or below the stated level", False, "bench/decision_gates.py not found"))
    bad = sum(r["promoted"] for r in res["promotions"] if r["rule"] == "after" and r["below_target"])
    goals.append(("zero below-target promotions", bad == 0, f"in force: {bad} below-target stream-quarters promoted"))
    lines += ["", "### Goals", "", "| goal | met | measured |", "|---|---|---|"]
    lines += [f"| {g} | {'met' if ok else 'MISSED'} | {fig} |" for g, ok, fig in goals]
    lines.append(END)
    return "\n".join(lines) + "\n", goals


def write_section(path: Path, section: str, start: str = START, end: str = END) -> None:
    """Replace a benchmark's section of `path` (between its markers `start` and `end`: this one's by
    default), or append it."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end) + "\n?", re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def run(quick: bool = False) -> tuple[dict, dict]:
    """Every measurement; (results, run info)."""
    policy = load_policy()
    seeds_fa, seeds_det, seeds_pro = (4, 20, 4) if quick else (40, 200, 40)
    started = time.perf_counter()
    res = {"false_alarms": false_alarms(seeds_fa, policy), "detection": detection(seeds_det, policy),
           "gates": gates(quick), "promotions": promotions(seeds_pro, policy)}
    info = {"seconds": time.perf_counter() - started, "seeds_fa": seeds_fa, "seeds_det": seeds_det}
    return res, info


def _machine() -> tuple[str, str]:
    from bench.run import machine

    m = machine()
    git = m.get("git", {})
    commit = git.get("commit", "?") + (f" (+{git['uncommitted_files']} uncommitted files)"
                                       if git.get("uncommitted_files") else "")
    mem = f", {m['memory_bytes'] / 2**30:.0f} GiB" if m.get("memory_bytes") else ""
    return commit, f"{m['cpu']}, {m['cores']} cores{mem}, Python {m['versions']['python']}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer seeds (a test runs it)")
    parser.add_argument("--out", type=Path, help="file whose section to write (default BENCHMARKS.md; with "
                                                 "--quick, none)")
    args = parser.parse_args(argv)
    res, info = run(args.quick)
    commit, machine = _machine()
    info.update(command="make bench-decisions" if not args.quick else "python -m bench.decisions --quick",
                commit=commit, machine=machine, date=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    section, goals = render(res, info)
    print(section)
    for name, ok, figure in goals:
        print(f"goal {'met' if ok else 'MISSED'}: {name}: {figure}")
    out = args.out or (None if args.quick else REPO / "BENCHMARKS.md")
    if out is not None:
        write_section(out, section)
        print(f"written: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
