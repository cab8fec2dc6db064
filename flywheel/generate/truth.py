"""The truth beside the generated data: what the world was, and what was actually written.

`Tally` accumulates, day by day, the realised final outcomes per scenario, tool-call counts, the
counts of valid, late, duplicated and malformed records, and the list of files. `build_truth` turns
it and the world's constants into the `truth.json` document; `write_truth` writes it (pretty,
sorted keys) together with `truth_labels.parquet`, one row per valid event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import polars as pl

from flywheel.generate import world as w
from flywheel.generate.expected import reviewed_outcome_truth
from flywheel.generate.malformed import KINDS, FileContent
from flywheel.generate.records import Context, DayResult

COUNT_KEYS = ("events_valid", "interventions_valid", "event_exact_duplicates", "intervention_exact_duplicates",
              "events_delivered_late", "interventions_delivered_before_their_event", "accepted_with_changed_text",
              "interventions_within_clock_skew", "events_with_two_interventions")


@dataclass
class Tally:
    """Running counts of one generation run."""

    ctx: Context
    outcomes: dict[int, np.ndarray] = field(default_factory=dict)
    tools: np.ndarray = field(default_factory=lambda: np.zeros((len(w.TOOLS), 3), np.int64))
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNT_KEYS, 0))
    malformed: dict[str, dict[str, int]] = field(
        default_factory=lambda: {fam: dict.fromkeys(kinds, 0) for fam, kinds in KINDS.items()})
    files: list[dict[str, Any]] = field(default_factory=list)

    def add_day(self, d: int, res: DayResult) -> None:
        """Count one simulated day (valid records, outcomes, tools)."""
        self.outcomes[d] = res.outcomes
        self.tools += res.tools
        self.counts["events_valid"] += res.events.height
        for key, value in res.stats.items():
            self.counts[key] += value

    def add_file(self, rel: str, family: str, fmt: str, day: date, content: FileContent, records: int) -> None:
        """Count one written file (duplicates, malformed records) and list it."""
        dup_key = "event_exact_duplicates" if family == "events" else "intervention_exact_duplicates"
        self.counts[dup_key] += content.exact_duplicates
        for kind, n in content.malformed.items():
            self.malformed[family][kind] += n
        self.files.append({"path": rel, "family": family, "format": fmt, "day": day.isoformat(), "records": records,
                           "exact_duplicates": content.exact_duplicates,
                           "malformed": sum(content.malformed.values())})


def _rates(p: tuple[float, ...]) -> dict[str, float]:
    latent = dict(zip(w.LATENT, p))
    return {"accepted": latent["accept"], "edited": round(latent["light_edit"] + latent["heavy_edit"], 6),
            "edited_light": latent["light_edit"], "edited_heavy": latent["heavy_edit"], "rejected": latent["reject"],
            "escalated": latent["escalate"]}


def _mode_scenarios(m: w.FailureMode, changes: bool) -> list[str]:
    """The scenarios failure mode `m` can hit (system modes: all; the emerging one: none without changes)."""
    if m.kind == "system":
        return [s.name for s in w.SCENARIOS]
    if m.kind == "emerging":
        return list(w.EMERGING_SCENARIOS) if changes else []
    return [s.name for s in w.SCENARIOS if m.name in s.modes or (changes and (s.modes_v3 or {}).get(m.name))]


def build_truth(ctx: Context, tally: Tally, events_per_day: int) -> dict[str, Any]:
    """The truth.json document (see the package docstring for its keys)."""
    day = lambda d: (ctx.start + timedelta(days=d)).isoformat()  # noqa: E731
    regressed = next(s for s in w.SCENARIOS if s.name == w.REGRESSED_SCENARIO)
    scenarios = {}
    for s in w.SCENARIOS:
        entry: dict[str, Any] = {
            "share": s.share, "autonomy_level": s.autonomy, "gate": s.gate, "review_rate": s.review_rate,
            "audit_rate": s.audit_rate, "revert_rate": s.revert_rate, "accepted_changed_text_share": s.changed_accept_share,
            "status_rates": dict(zip(("error", "timeout", "fallback"), s.status_rates)),
            "outcome_probs": _rates(s.probs), "tools": {t: p for t, p in s.tools}, "models": s.models,
            "failure_modes": s.modes, "prompt_v1_share_before_rollout": s.v1_share,
        }
        if s.probs_v3 is not None and ctx.changes:
            entry["outcome_probs_v3"] = _rates(s.probs_v3)
            entry["failure_modes_v3"] = s.modes_v3
        scenarios[s.name] = entry
    outcomes = {s.name: {day(d): dict(zip(w.FINAL_OUTCOMES, (int(x) for x in tally.outcomes[d][si])))
                         for d in sorted(tally.outcomes)} for si, s in enumerate(w.SCENARIOS)}
    tools = {t.name: {"error_rate": t.error_rate, "denial_rate": t.denial_rate,
                      "scenarios": [s.name for s in w.SCENARIOS if t.name in dict(s.tools)],
                      "calls": int(tally.tools[i, 0]), "errors": int(tally.tools[i, 1]), "denied": int(tally.tools[i, 2])}
             for i, t in enumerate(w.TOOLS)}
    return {
        "generator": "flywheel.generate",
        "seed": ctx.seed,
        "start": ctx.start.isoformat(),
        "end": day(ctx.days - 1),
        "days": ctx.days,
        "events_per_day": events_per_day,
        "changes": ctx.changes,
        "events_by_day": {day(d): n for d, n in enumerate(ctx.counts)},
        "scenarios": scenarios,
        "latent_outcomes": list(w.LATENT),
        "fallback_outcome_probs": _rates(w.FALLBACK_PROBS),
        "confidence_beta_by_latent_outcome": {k: list(v) for k, v in zip(w.LATENT, w.CONFIDENCE_BETA)},
        "models": {m.name: {"provider": m.system, "latency_median_ms": m.latency_median_ms,
                            "error_multiplier": m.error_multiplier, "confidence_bias": m.confidence_bias}
                   for m in w.MODELS},
        "prompt_versions": {
            "v1": {"rollout_day": 0, "rollout_date": day(0), "system_prompt_tokens": w.PROMPT_TOKENS["v1"]},
            "v2": {"rollout_day": 0, "rollout_date": day(0), "system_prompt_tokens": w.PROMPT_TOKENS["v2"]},
            "v3": {"rollout_day": ctx.rollout_day, "rollout_date": day(ctx.rollout_day),
                   "share_on_rollout_day": w.V3_SHARE_ON_ROLLOUT_DAY, "share_after": w.V3_SHARE_AFTER,
                   "system_prompt_tokens": w.PROMPT_TOKENS["v3"]},
            "unversioned_share": w.UNVERSIONED_SHARE,
        },
        "regression": {"scenario": regressed.name, "prompt_version": w.REGRESSING_VERSION,
                       "rollout_day": ctx.rollout_day, "rollout_date": day(ctx.rollout_day),
                       "rates_before": _rates(regressed.probs), "rates_after": _rates(regressed.probs_v3 or regressed.probs),
                       "failure_modes_before": regressed.modes, "failure_modes_after": regressed.modes_v3}
        if ctx.changes else None,
        "emerging_failure_mode": {"name": w.EMERGING_MODE, "first_day": ctx.emerging_day,
                                  "first_date": day(ctx.emerging_day), "scenarios": list(w.EMERGING_SCENARIOS),
                                  "daily_share": {day(d): w.emerging_rate(d, ctx.emerging_day)
                                                  for d in range(ctx.emerging_day, ctx.days)}}
        if ctx.emerging_day is not None else None,
        "failure_modes": [{"name": m.name, "kind": m.kind, "description": m.description,
                           "scenarios": _mode_scenarios(m, ctx.changes)} for m in w.FAILURE_MODES],
        "tools": tools,
        "counts": dict(tally.counts),
        "malformed": tally.malformed,
        "outcomes": outcomes,
        "outcome_definition": ("final outcome of each valid event = action of its latest intervention by occurred_at; "
                               "accepted with a final_text different from output_text counts as edited; "
                               "no intervention = unreviewed; counted by the event's UTC date"),
        "files": tally.files,
        **reviewed_outcome_truth(ctx.days, ctx.emerging_day, day, ctx.changes),
    }


def write_truth(landing: Path, truth: dict[str, Any], labels: pl.DataFrame) -> None:
    """Write truth.json (pretty, sorted keys) and truth_labels.parquet into `landing`."""
    (landing / "truth.json").write_bytes(orjson.dumps(truth, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
    labels.write_parquet(landing / "truth_labels.parquet", compression="zstd", statistics=False)
