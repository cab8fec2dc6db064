"""How often the failure-cluster growth flags fire on failure mixes with no change in them, and how
soon they fire on a cluster that emerges or grows.

    python -m bench.failure_growth [--seeds 10] [--days 40]

Each seed simulates, night after night, the failure clusters of 8 scenarios as the clusterer would
leave them (`failures/assignments` and `failures/clusters` files in a temporary store), and runs the
real `failures.growth.cluster_daily` on each night (the policy's default parameters). Six scenarios
never change: Poisson daily failing events with means 20, 50, 150, 400, 1,000 and 2,000, 10 to 40
clusters each (shares from a Dirichlet(0.7), 10% of the events unmatched), and on 10% of the
scenario-nights a one-night cluster founded by the clusterer (min_events + Poisson(3) events taken
from the unmatched, gone the next night). Two scenarios (daily means 50, 400 or 2,000 in turn)
change on day 25: in one a new cluster takes 7.2% of the failures from then on; in the other an
existing cluster of 3-6% share triples. Two regimes: stationary multinomial shares, and
over-dispersed shares (each night's mix drawn from a Dirichlet with concentration 300 around the
scenario's mix: a 5% cluster's share varies by about 25% of itself from night to night, as real
data does).

Printed per regime: the share of the unchanged scenarios' nights (after the first 8, so the
baseline window is full) with any cluster flagged new or growing, by daily volume, beside the rule
before issue 15 on the same nights (2x share or absent from the baseline, 5 events; new = born
that night); and, for the
injected changes, the share detected on their first day, within 1 day and within 3 days, and the
median delay.
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from flywheel.config import Settings
from flywheel.failures.growth import cluster_daily
from flywheel.failures.model import ASSIGNMENT_SCHEMA
from flywheel.store import Layout, write_parquet_atomic
from flywheel.tables import ASSIGNMENTS, CLUSTERS

START = date(2026, 1, 1)
NULL_VOLUMES = (20, 50, 150, 400, 1000, 2000)
CHANGE_VOLUMES = (50, 400, 2000)
CHANGE_DAY = 25
FULL_BASELINE = 8
BLIP_RATE = 0.10
CONCENTRATION = 300.0


class World:
    """The scenarios' cluster mixes of one seed, and the clusters' birth dates."""

    def __init__(self, seed: int):
        self.rng = rng = np.random.default_rng(seed)
        self.next_id = 1
        self.born: dict[int, date] = {}
        self.scenarios: dict[str, dict] = {}
        change_volumes = CHANGE_VOLUMES[seed % 3], CHANGE_VOLUMES[(seed + 1) % 3]
        specs = [(f"null_{v}", int(v), None) for v in NULL_VOLUMES]
        specs += [(f"emerging_{change_volumes[0]}", int(change_volumes[0]), "emerging"),
                  (f"growing_{change_volumes[1]}", int(change_volumes[1]), "growing")]
        for name, volume, change in specs:
            k = int(rng.integers(10, 41))
            ids = list(range(self.next_id, self.next_id + k))
            self.next_id += k
            for c in ids:
                self.born[c] = START - timedelta(days=60)
            shares = rng.dirichlet(np.full(k, 0.7)) * 0.9
            target = None
            if change == "growing":  # the cluster whose share triples: one of 3-6% (made so if none is)
                i = int(np.argmin(np.abs(shares - 0.045)))
                if not 0.03 <= shares[i] <= 0.06:
                    shares = shares * (0.855 / (shares.sum() - shares[i]))
                    shares[i] = 0.045
                target = ids[i]
            self.scenarios[name] = {"volume": volume, "ids": ids, "shares": shares, "change": change, "target": target}

    def night(self, day: date, dispersed: bool) -> list[tuple[str, int | None]]:
        """The night's (scenario, cluster_id) rows."""
        rows: list[tuple[str, int | None]] = []
        index = (day - START).days
        for name, s in self.scenarios.items():
            ids, shares = list(s["ids"]), s["shares"].copy()
            if index >= CHANGE_DAY and s["change"] == "growing":
                i = ids.index(s["target"])
                shares[i] *= 3
                shares *= 0.9 / shares.sum()
            if index >= CHANGE_DAY and s["change"] == "emerging":
                if s["target"] is None:
                    s["target"] = self.next_id
                    self.born[self.next_id] = day
                    self.next_id += 1
                ids.append(s["target"])
                shares = np.append(shares * 0.92, 0.08 * 0.9)
            probs = np.append(shares, 1 - shares.sum())  # the last: unmatched
            if dispersed:
                probs = self.rng.dirichlet(probs * CONCENTRATION + 1e-9)
            n = int(self.rng.poisson(s["volume"]))
            counts = self.rng.multinomial(n, probs)
            if self.rng.random() < BLIP_RATE:  # the clusterer founds a cluster that lasts one night
                blip = min(int(counts[-1]), 5 + int(self.rng.poisson(3)))
                if blip >= 5:
                    self.born[self.next_id] = day
                    rows += [(name, self.next_id)] * blip
                    counts[-1] -= blip
                    self.next_id += 1
            for c, x in zip(ids + [None], counts):
                rows += [(name, c)] * int(x)
        return rows


def _write(layout: Layout, world: World, day: date, rows: list[tuple[str, int | None]]) -> None:
    n = len(rows)
    frame = pl.DataFrame({
        "event_id": [f"{day}-{i}" for i in range(n)], "event_date": [day] * n, "scenario": [s for s, _ in rows],
        "model": ["m"] * n, "prompt_version": ["v1"] * n, "status": ["ok"] * n, "outcome": ["rejected"] * n,
        "cluster_id": [c for _, c in rows], "similarity": [0.9] * n, "matched_as": ["existing"] * n,
        "fitted": [True] * n, "run_id": ["bench"] * n}, schema=ASSIGNMENT_SCHEMA)
    write_parquet_atomic(frame.to_arrow(), layout.table(ASSIGNMENTS.path, day))
    known = sorted(c for c, b in world.born.items() if b <= day)
    clusters = pl.DataFrame({"event_date": [day] * len(known), "cluster_id": known,
                             "label": [f"c{c}" for c in known], "born_date": [world.born[c] for c in known]},
                            schema={"event_date": pl.Date, "cluster_id": pl.Int64, "label": pl.String,
                                    "born_date": pl.Date})
    write_parquet_atomic(clusters.to_arrow(), layout.table(CLUSTERS.path, day))


def _rule_before(day: date) -> pl.Expr:
    """The flags until issue 15, from the same counts: at least 5 events, the scenario had failures in
    the window, and the cluster was born that night, or its share at least doubled over the whole
    window (or it had none there)."""
    window = pl.col("baseline_failures") + pl.col("failures_before_birth")
    return ((pl.col("events") >= 5) & (window > 0)
            & ((pl.col("born_date") == day) | (pl.col("baseline_events") == 0)
               | (pl.col("share") >= 2 * pl.col("baseline_events") / window)))


def run_seed(seed: int, days: int, dispersed: bool, root: Path) -> tuple[list[dict], list[dict]]:
    """(one row per unchanged scenario-night: volume, flagged; one row per injected change: kind,
    volume, delay in days or None)."""
    world = World(seed)
    settings = Settings(landing=root / "landing", store=root / "store", db=root / "bench.duckdb")
    layout = Layout(settings.store)
    nights: list[dict] = []
    first_flag: dict[str, int] = {}
    for i in range(days):
        day = START + timedelta(days=i)
        _write(layout, world, day, world.night(day, dispersed))
        out = cluster_daily(settings, day)
        flagged = out.filter(pl.col("is_new") | pl.col("is_growing"))
        hit = set(flagged["scenario"].to_list())
        hit_before = set(out.filter(_rule_before(day))["scenario"].to_list())
        for name, s in world.scenarios.items():
            if s["change"] is None and i >= FULL_BASELINE:
                nights.append({"volume": s["volume"], "flagged": name in hit, "before": name in hit_before})
            elif s["change"] and i >= CHANGE_DAY and name not in first_flag:
                mine = flagged.filter((pl.col("scenario") == name) & (pl.col("cluster_id") == s["target"]))
                if mine.height:
                    first_flag[name] = i - CHANGE_DAY
    changes = [{"kind": s["change"], "volume": s["volume"], "delay": first_flag.get(name)}
               for name, s in world.scenarios.items() if s["change"]]
    return nights, changes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--days", type=int, default=40)
    args = parser.parse_args(argv)
    for dispersed in (False, True):
        nights: list[dict] = []
        changes: list[dict] = []
        for seed in range(args.seeds):
            with tempfile.TemporaryDirectory(prefix="bench-growth-") as tmp:
                n, c = run_seed(seed, args.days, dispersed, Path(tmp))
            nights += n
            changes += c
        regime = "over-dispersed shares (Dirichlet, concentration 300)" if dispersed else "multinomial shares"
        print(f"\n{regime}, {args.seeds} seeds x {args.days} days")
        frame = pl.DataFrame(nights)
        total = frame["flagged"].mean()
        print(f"  unchanged scenario-nights flagged: {frame['flagged'].sum()} of {frame.height} ({100 * total:.1f}%); "
              f"by the rule before: {frame['before'].sum()} ({100 * frame['before'].mean():.1f}%)")
        by = frame.group_by("volume").agg(pl.col("flagged").mean()).sort("volume")
        print("  by daily failing events: " + ", ".join(f"{v}: {100 * f:.1f}%" for v, f in by.iter_rows()))
        ch = pl.DataFrame(changes, schema={"kind": pl.String, "volume": pl.Int64, "delay": pl.Int64})
        for kind in ("emerging", "growing"):
            part = ch.filter(pl.col("kind") == kind)
            delays = part["delay"]
            line = (f"  {kind}: {part.height} injected; flagged on day 0: {(delays == 0).sum()}, within 1 day: "
                    f"{(delays <= 1).sum()}, within 3 days: {(delays <= 3).sum()}, never ({args.days - CHANGE_DAY} "
                    f"days): {delays.null_count()}; median delay {delays.median()} days")
            print(line)
            for v, d, n, never in part.group_by("volume").agg(
                    pl.col("delay").median(), pl.len(), pl.col("delay").null_count().alias("never")).sort("volume").iter_rows():
                print(f"    daily volume {v}: {n} injected, median delay {d} days, never {never}")


if __name__ == "__main__":
    main()
