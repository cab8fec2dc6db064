"""Simulate one day: the valid AI events of that day and every human intervention they will receive.

For each event the simulator draws, in order: its time, scenario, model, prompt version, status,
latent outcome (what a reviewer would do with the draft) and failure mode, confidence (from the
outcome, so it predicts acceptance imperfectly), the route the product took (shadow, human review,
acting alone, fallback to a human), texts, tool calls, latency and tokens. Then the humans act:
reviews of routed drafts, audits and reverts of actions taken alone, and a few two-step cases
(escalated, then resolved). Everything is vectorised with numpy except cheap per-record string work.
Interventions dated after the last day are dropped (their events stay unreviewed, or escalated when
only the first step of a two-step review is written); the final outcome of each event is derived
from what is actually written. `expected.py` derives the expected outcome shares from the same model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np
import orjson
import polars as pl
import pyarrow as pa

from flywheel.contracts import ACTIONS, EVENT_STATUSES, TOOL_STATUSES
from flywheel.generate import feedback as fb, world as w
from flywheel.generate.columns import EVENT_SCHEMA, INTERVENTION_SCHEMA, TOOL_CALL_DTYPE
from flywheel.generate.stamps import (
    DAY_MS,
    EVENT_IDS,
    INTERVENTION_IDS,
    format_timestamps,
    ids,
    labels,
    offsets,
    trace_ids,
)
from flywheel.generate.templates_customer import INVOICE_DISPUTE, KB_ANSWER, ORDER_STATUS, REFUND, TICKET_TRIAGE
from flywheel.generate.templates_internal import (
    CODE_REVIEW,
    CONTRACT_SUMMARY,
    PRODUCT_COPY,
    SQL_GENERATION,
    TRANSLATION_DE,
)
from flywheel.generate.texts import TextSpec, light_edit, render, rewrite

SPECS: dict[str, TextSpec] = {
    "refund_request": REFUND, "order_status": ORDER_STATUS, "sql_generation": SQL_GENERATION,
    "code_review": CODE_REVIEW, "translation_de": TRANSLATION_DE, "contract_summary": CONTRACT_SUMMARY,
    "ticket_triage": TICKET_TRIAGE, "kb_answer": KB_ANSWER, "invoice_dispute": INVOICE_DISPUTE,
    "product_copy": PRODUCT_COPY,
}

# Routes: how the product acted on the draft.
SHADOW, HUMAN, AUTO, FALLBACK_HUMAN = 0, 1, 2, 3
ROUTE_NAMES = ("shadow", "human_review", "auto", "fallback_human")
OK, ERROR, TIMEOUT, FALLBACK = (EVENT_STATUSES.index(s) for s in ("ok", "error", "timeout", "fallback"))
ACCEPTED, EDITED, REJECTED, ESCALATED, REVERTED = range(5)
UNREVIEWED = 5
assert ACTIONS == ("accepted", "edited", "rejected", "escalated", "reverted")

_S = w.SCENARIOS
_AUTONOMY = np.array([("shadow", "assist", "gated", "autonomous").index(s.autonomy) for s in _S])
_GATE = np.array([s.gate if s.gate is not None else np.nan for s in _S])
_REVIEW = np.array([s.review_rate for s in _S])
_AUDIT = np.array([s.audit_rate for s in _S])
_REVERT = np.array([s.revert_rate for s in _S])
_TIMEOUT = np.array([s.timeout_ms for s in _S])
_LATFACTOR = np.array([s.latency_factor for s in _S])
_TEMPERATURE = np.array([{"sql_generation": 0.0, "code_review": 0.1, "product_copy": 0.7}.get(s.name, 0.2) for s in _S])
_REVIEW_FACTOR = np.array([{"sql_generation": 2.0, "code_review": 3.0, "contract_summary": 4.0, "translation_de": 1.5,
                            "invoice_dispute": 1.5}.get(s.name, 1.0) for s in _S])
_M_MEDIAN = np.array([m.latency_median_ms for m in w.MODELS])
_M_SIGMA = np.array([m.latency_sigma for m in w.MODELS])
_M_ERR = np.array([m.error_multiplier for m in w.MODELS])
_M_BIAS = np.array([m.confidence_bias for m in w.MODELS])
_BETA_A = np.array([a for a, _ in w.CONFIDENCE_BETA])
_BETA_B = np.array([b for _, b in w.CONFIDENCE_BETA])
_PROMPT_TOKENS = np.array([w.PROMPT_TOKENS["v1"], w.PROMPT_TOKENS["v2"], w.PROMPT_TOKENS["v3"], w.PROMPT_TOKENS["v2"]])
_SCENARIO_NAMES = [s.name for s in _S]
_MODEL_NAMES = [m.name for m in w.MODELS]
_MODE_NAMES = [m.name for m in w.FAILURE_MODES]
_TOOL_NAMES = [t.name for t in w.TOOLS]
_SYSTEM_MODES = np.array([m.kind == "system" for m in w.FAILURE_MODES])
_REGIONS = ("eu-west-1", "us-east-1", "ap-southeast-2")
_ACTIONS_BY_LATENT = {how: np.array([ACTIONS.index(a) for a in acts]) for how, acts in w.ACTIONS_BY_LATENT.items()}
_EMERGING_LATENT = np.flatnonzero(np.array(w.EMERGING_LATENT_PROBS) > 0)
_EMERGING_P = [w.EMERGING_LATENT_PROBS[i] for i in _EMERGING_LATENT]
# Review-time medians (s) by action; edits split into light and heavy.
_MEDIAN_SECONDS = {"accepted": 25.0, "light": 70.0, "heavy": 240.0, "rejected": 50.0, "escalated": 90.0, "reverted": 150.0}


@dataclass(frozen=True)
class Context:
    """What every day of one run shares: seed, calendar, volumes, milestones, reviewers."""

    seed: int
    start: date
    days: int
    day0_ms: int
    counts: tuple[int, ...]
    rollout_day: int
    emerging_day: int | None  # None when the run has no changes
    reviewer_pools: tuple[tuple[int, ...], ...]
    reviewer_offsets: tuple[int, ...]
    changes: bool = True  # False: v3 keeps v2's rates and no emerging failure mode


@dataclass
class DayResult:
    """One simulated day: frames (with internal `_` columns), truth labels and tallies."""

    events: pl.DataFrame
    interventions: pl.DataFrame
    labels: pl.DataFrame
    outcomes: np.ndarray  # (scenario, FINAL_OUTCOMES) counts
    tools: np.ndarray  # (tool, [calls, errors, denied])
    stats: dict[str, int] = field(default_factory=dict)


def make_context(seed: int, start: date, days: int, events_per_day: int, changes: bool = True) -> Context:
    """Per-run constants: daily volumes (weekday pattern, exact total), milestones and reviewers.

    Without `changes` v3 is still rolled out (with v2's rates) and there is no emerging failure mode.
    """
    rng = np.random.default_rng([seed, 0xC0FFEE])
    weekday = np.array([(start.toordinal() + d + 6) % 7 for d in range(days)])  # date.weekday(): 0 = Monday
    weights = np.where(weekday >= 5, 0.72, 1.08) * rng.uniform(0.96, 1.04, size=days)
    total = days * events_per_day
    raw = weights / weights.sum() * total
    counts = np.floor(raw).astype(np.int64)
    counts[np.argsort(-(raw - counts), kind="stable")[: total - counts.sum()]] += 1
    pools = tuple(tuple(sorted(rng.choice(w.N_REVIEWERS, size=w.REVIEWERS_PER_SCENARIO, replace=False).tolist()))
                  for _ in _S)
    rev_off = offsets(rng, w.N_REVIEWERS, ((0, 0.6), (60, 0.1), (120, 0.1), (-300, 0.12), (330, 0.08)))
    day0 = (start.toordinal() - date(1970, 1, 1).toordinal()) * DAY_MS
    return Context(seed, start, days, day0, tuple(counts.tolist()), w.rollout_day(days),
                   w.emerging_first_day(days) if changes else None, pools, tuple(rev_off.tolist()), changes)


def _nulls(n: int) -> pl.Series:
    return pl.repeat(None, n, dtype=pl.String, eager=True)


def _time_of_day(rng: np.random.Generator, n: int) -> np.ndarray:
    share, mean, sd = w.TIME_OF_DAY_BUSY
    busy = rng.random(n) < share
    t = np.where(busy, rng.normal(mean, sd, n), rng.uniform(0, DAY_MS, n))
    return np.mod(t, DAY_MS).astype(np.int64)


def _choice_idx(rng: np.random.Generator, weights: dict[str, float], index: dict[str, int], k: int) -> np.ndarray:
    keys = list(weights)
    p = np.array([weights[x] for x in keys], dtype=float)
    codes = np.array([index[x] for x in keys])
    return codes[rng.choice(len(keys), size=k, p=p / p.sum())]


def simulate_day(ctx: Context, d: int) -> DayResult:
    """Simulate day index `d` of the run (see the module docstring)."""
    rng = np.random.default_rng([ctx.seed, d, 101])
    n = ctx.counts[d]
    t = np.sort(ctx.day0_ms + d * DAY_MS + _time_of_day(rng, n))
    shares = rng.dirichlet(np.array([s.share for s in _S]) * 4000.0)
    scen = rng.choice(len(_S), size=n, p=shares)
    model = np.zeros(n, np.int64)
    pv = np.zeros(n, np.int64)
    status = np.zeros(n, np.int64)
    latent = np.full(n, -1, np.int64)
    mode = np.full(n, -1, np.int64)
    v3_share = 0.0 if d < ctx.rollout_day else (w.V3_SHARE_ON_ROLLOUT_DAY if d == ctx.rollout_day else w.V3_SHARE_AFTER)
    emerging = w.emerging_rate(d, ctx.emerging_day) if ctx.emerging_day is not None else 0.0
    for si, s in enumerate(_S):
        idx = np.flatnonzero(scen == si)
        k = len(idx)
        if k == 0:
            continue
        m = _choice_idx(rng, s.models, w.MODEL_INDEX, k)
        v = np.where(rng.random(k) < v3_share, 2, np.where(rng.random(k) < s.v1_share, 0, 1))
        v = np.where(rng.random(k) < w.UNVERSIONED_SHARE, 3, v)
        e, to, fbr = s.status_rates
        u, em = rng.random(k), _M_ERR[m]
        st = np.where(u < e * em, ERROR, np.where(u < (e + to) * em, TIMEOUT, np.where(u < (e + to) * em + fbr, FALLBACK, OK)))
        lat = np.full(k, -1, np.int64)
        md = np.full(k, -1, np.int64)
        for is_v3, version in ((v != 2, "v2"), (v == 2, "v3")):
            sel = is_v3 & (st == OK)
            lat[sel] = rng.choice(5, size=int(sel.sum()), p=w.outcome_probs(s, version, ctx.changes))
            bad = sel & np.isin(lat, list(w.BAD_LATENT))
            md[bad] = _choice_idx(rng, w.mode_weights(s, version, ctx.changes), w.MODE_INDEX, int(bad.sum()))
        sel = st == FALLBACK
        lat[sel] = rng.choice(5, size=int(sel.sum()), p=w.FALLBACK_PROBS)
        md[sel & np.isin(lat, list(w.BAD_LATENT))] = w.MODE_INDEX["missing_required_info"]
        md[st == ERROR] = w.MODE_INDEX["service_error"]
        md[st == TIMEOUT] = w.MODE_INDEX["timeout"]
        if s.name in w.EMERGING_SCENARIOS and emerging > 0:
            hit = (st == OK) & (rng.random(k) < emerging)
            lat[hit] = rng.choice(_EMERGING_LATENT, size=int(hit.sum()), p=_EMERGING_P)
            md[hit] = w.MODE_INDEX[w.EMERGING_MODE]
        model[idx], pv[idx], status[idx], latent[idx], mode[idx] = m, v, st, lat, md

    ok = status == OK
    conf = np.full(n, np.nan)
    a = _BETA_A[np.where(ok, latent, 0)]
    b = _BETA_B[np.where(ok, latent, 0)]
    draw = np.clip(rng.beta(a, b) + _M_BIAS[model], 0.001, 0.999)
    conf[ok] = np.round(draw[ok], 4)

    aut = _AUTONOMY[scen]
    gate = _GATE[scen]
    above = ok & (np.nan_to_num(conf, nan=-1.0) >= np.nan_to_num(gate, nan=2.0))
    route = np.select([aut == 0, (status == ERROR) | (status == TIMEOUT), aut == 1, aut == 2],
                      [SHADOW, FALLBACK_HUMAN, HUMAN, np.where(above, AUTO, HUMAN)], AUTO)
    audit = (route == AUTO) & (rng.random(n) < _AUDIT[scen])

    ev = _texts_and_tools(rng, scen, status, mode, n)
    late = (rng.random(n) < w.LATE_EVENT_SHARE) & (d < ctx.days - 1)
    frame = _event_frame(ctx, d, rng, t, scen, model, pv, status, conf, route, audit, ev)
    frame = frame.with_columns(pl.Series("_t", t), pl.Series("_late", late))

    iv = _interventions(ctx, d, rng, t, scen, status, latent, mode, route, audit, ev, late, frame["event_id"])
    outcome = iv.pop("outcome")
    truth = pl.DataFrame({
        "event_id": frame["event_id"],
        "event_date": pl.Series([ctx.start.toordinal() + d - 719163] * n, dtype=pl.Int32).cast(pl.Date),
        "scenario": labels(scen, _SCENARIO_NAMES),
        "model": labels(model, _MODEL_NAMES),
        "prompt_version": labels(pv, ("v1", "v2", "v3", "unversioned")),
        "final_outcome": labels(outcome, w.FINAL_OUTCOMES),
        "failure_mode": labels(np.where(mode >= 0, mode, 0), _MODE_NAMES).zip_with(pl.Series(mode >= 0), _nulls(n)),
    })
    counts = np.zeros((len(_S), len(w.FINAL_OUTCOMES)), np.int64)
    np.add.at(counts, (scen, outcome), 1)
    stats = iv.pop("stats")
    stats["events_delivered_late"] = int(late.sum())
    return DayResult(frame, iv.pop("frame"), truth, counts, ev["tool_stats"], stats)


def _texts_and_tools(rng: np.random.Generator, scen: np.ndarray, status: np.ndarray, mode: np.ndarray,
                     n: int) -> dict:
    """Texts, slot rows and tool calls of every event, filled scenario by scenario."""
    rows: list = [None] * n
    inputs: list = [None] * n
    outputs: list = [None] * n
    call_event: list[np.ndarray] = []
    call_tool: list[np.ndarray] = []
    call_status: list[np.ndarray] = []
    call_args: list[str] = []
    extra_tokens = np.zeros(n, np.int64)
    status_names = np.array(EVENT_STATUSES)[status]
    mode_names = [w.FAILURE_MODES[x].name if x >= 0 and not _SYSTEM_MODES[x] else None for x in mode.tolist()]
    for si, s in enumerate(_S):
        idx = np.flatnonzero(scen == si)
        k = len(idx)
        if k == 0:
            continue
        spec = SPECS[s.name]
        il = idx.tolist()
        st = status[idx]
        modes = [mode_names[i] if st_ == OK else None for i, st_ in zip(il, st.tolist())]
        r = render(spec, rng, k, modes, status_names[idx].tolist())
        for j, i in enumerate(il):
            rows[i], inputs[i], outputs[i] = r.rows[j], r.inputs[j], r.outputs[j]
        if s.name == "contract_summary":
            extra_tokens[idx] = np.array([row["pages"] for row in r.rows]) * 480
        names = [name for name, _ in s.tools]
        tix = np.array([w.TOOL_INDEX[x] for x in names])
        err = np.array([w.TOOLS[x].error_rate for x in tix])
        deny = np.array([w.TOOLS[x].denial_rate for x in tix])
        called = rng.random((k, len(names))) < np.array([p for _, p in s.tools])
        u = rng.random((k, len(names)))
        tstat = np.where(u < err, 1, np.where(u < err + deny, 2, 0))
        failing = (st == ERROR) & called.any(axis=1)
        last = len(names) - 1 - np.argmax(called[:, ::-1], axis=1)
        tstat[np.flatnonzero(failing), last[failing]] = 1
        ej, ex = np.nonzero(called)  # event-major order
        call_event.append(idx[ej])
        call_tool.append(tix[ex])
        call_status.append(tstat[ej, ex])
        rr, oo, args = r.rows, r.outputs, spec.args
        call_args.extend(orjson.dumps(args(names[x], rr[j], oo[j])).decode() for j, x in zip(ej.tolist(), ex.tolist()))
    ce = np.concatenate(call_event) if call_event else np.zeros(0, np.int64)
    order = np.argsort(ce, kind="stable")
    calls = {"event": ce[order], "tool": np.concatenate(call_tool)[order], "status": np.concatenate(call_status)[order],
             "args": pl.Series(call_args, dtype=pl.String).gather(order)}
    tool_stats = np.zeros((len(w.TOOLS), 3), np.int64)
    for code in range(3):
        np.add.at(tool_stats[:, code], calls["tool"][calls["status"] == code] if code else calls["tool"], 1)
    return {"rows": rows, "inputs": inputs, "outputs": outputs, "calls": calls, "extra_tokens": extra_tokens,
            "tool_stats": tool_stats}


def _decision_paths(rng: np.random.Generator, scen: np.ndarray, status: np.ndarray, conf: np.ndarray,
                    route: np.ndarray, audit: np.ndarray) -> tuple[list[str], list[str]]:
    """(cell form, JSON form) of every event's decision path; a few are plain strings."""
    plain = rng.random(len(scen)) < w.PLAIN_DECISION_PATH_SHARE
    cache: dict[tuple, tuple[str, str]] = {}
    cells: list[str] = []
    jsons: list[str] = []
    for s, st, c, r, a, p in zip(scen.tolist(), status.tolist(), np.isnan(conf).tolist(), route.tolist(),
                                 audit.tolist(), plain.tolist()):
        key = (s, st, c, r, a, p)
        hit = cache.get(key)
        if hit is None:
            hit = cache[key] = _decision_path(_S[s], st, c, r, a, p)
        cells.append(hit[0])
        jsons.append(hit[1])
    return cells, jsons


def _decision_path(s: w.Scenario, st: int, no_conf: bool, route: int, audit: bool, plain: bool) -> tuple[str, str]:
    name = ROUTE_NAMES[route]
    if plain:
        text = {SHADOW: "shadow (output not used)", HUMAN: "human_review", AUTO: "auto (audit sample)" if audit else "auto",
                FALLBACK_HUMAN: f"fallback_human: {EVENT_STATUSES[st]}"}[route]
        return text, orjson.dumps(text).decode()
    obj: dict = {"route": name}
    if route == SHADOW:
        obj["output_used"] = False
    elif route == FALLBACK_HUMAN:
        obj["reason"] = EVENT_STATUSES[st]
    elif s.gate is not None:
        obj["gate"] = s.gate
        obj["rule"] = "no confidence (fallback)" if no_conf else ("confidence >= gate" if route == AUTO else "confidence < gate")
    elif route == HUMAN:
        obj["policy"] = "review_all"
    if route == AUTO:
        obj["audit_sample"] = bool(audit)
    if st == FALLBACK:
        obj["fallback"] = "canned_reply"
    text = orjson.dumps(obj).decode()
    return text, text


def _attributes(rng: np.random.Generator, scen: np.ndarray, model: np.ndarray, status: np.ndarray,
                calls: dict) -> pl.Series:
    n = len(scen)
    channel = [None] * n
    locale = [None] * n
    for si, s in enumerate(_S):
        idx = np.flatnonzero(scen == si)
        ch = np.array(s.channels, dtype=object)[rng.integers(len(s.channels), size=len(idx))]
        lo = np.array(s.locales, dtype=object)[rng.integers(len(s.locales), size=len(idx))]
        for j, i in enumerate(idx.tolist()):
            channel[i], locale[i] = ch[j], lo[j]
    err_type: list = [None] * n
    err_msg: list = [None] * n
    last_call = np.full(n, -1, np.int64)
    last_call[calls["event"]] = calls["tool"]  # later calls of an event overwrite earlier ones
    for i in np.flatnonzero((status == ERROR) | (status == TIMEOUT)).tolist():
        tool = w.TOOLS[last_call[i]].name if last_call[i] >= 0 else None
        if status[i] == TIMEOUT:
            err_type[i] = "TimeoutError"
            err_msg[i] = f"tool {tool} timed out" if tool and i % 2 else f"model call exceeded {_TIMEOUT[scen[i]] / 1000:.0f}s"
        else:
            err_type[i] = "ToolError" if tool and i % 3 else "UpstreamError"
            err_msg[i] = f"{tool}: connection reset by peer" if err_type[i] == "ToolError" else "503 Service Unavailable"
    frame = pl.DataFrame({
        "channel": channel, "locale": locale,
        "region": np.array(_REGIONS)[rng.integers(len(_REGIONS), size=n)],
        "gen_ai.system": np.array([m.system for m in w.MODELS])[model],
        "gen_ai.request.temperature": _TEMPERATURE[scen],
        "error.type": pl.Series(err_type, dtype=pl.String), "error.message": pl.Series(err_msg, dtype=pl.String),
        "fallback.reason": np.array(["low_quality_output", "content_filter", "rate_limited"])[rng.integers(3, size=n)],
        "st": status,
    })
    base = ["channel", "locale", "region", "gen_ai.system", "gen_ai.request.temperature"]
    out = frame.select(
        pl.when(pl.col("st").is_in([ERROR, TIMEOUT])).then(pl.struct(base + ["error.type", "error.message"]).struct.json_encode())
        .when(pl.col("st") == FALLBACK).then(pl.struct(base + ["fallback.reason"]).struct.json_encode())
        .otherwise(pl.struct(base).struct.json_encode()).alias("a"))
    return out.to_series()


def _tool_call_column(calls: dict, n: int) -> tuple[pl.Series, pl.Series]:
    """The list<struct> column and the JSON-array texts of every event's tool calls."""
    offsets_ = np.zeros(n + 1, np.int32)
    np.cumsum(np.bincount(calls["event"], minlength=n), out=offsets_[1:])
    struct = pa.StructArray.from_arrays(
        [labels(calls["tool"], _TOOL_NAMES).to_arrow(), labels(calls["status"], TOOL_STATUSES).to_arrow(),
         calls["args"].to_arrow()], names=["name", "status", "arguments"])
    column = pl.Series("tool_calls", pa.ListArray.from_arrays(pa.array(offsets_), struct),
                       dtype=pl.List(TOOL_CALL_DTYPE))
    return column, tool_calls_json(column)


def tool_calls_json(column: pl.Series) -> pl.Series:
    """JSON array texts of a list<struct{name, status, arguments}> column, `arguments` spliced as JSON."""
    field = pl.element().struct.field
    piece = pl.concat_str([pl.lit('{"name":"'), field("name"), pl.lit('","status":"'), field("status"),
                           pl.lit('","arguments":'), field("arguments"), pl.lit("}")])
    expr = pl.lit("[") + pl.col("tool_calls").list.eval(piece).list.join(",") + pl.lit("]")
    return pl.DataFrame([column.alias("tool_calls")]).select(expr.alias("tool_calls_json")).to_series()


def _event_frame(ctx: Context, d: int, rng: np.random.Generator, t: np.ndarray, scen: np.ndarray, model: np.ndarray,
                 pv: np.ndarray, status: np.ndarray, conf: np.ndarray, route: np.ndarray, audit: np.ndarray,
                 ev: dict) -> pl.DataFrame:
    n = len(t)
    calls = ev["calls"]
    n_calls = np.bincount(calls["event"], minlength=n)
    med = _M_MEDIAN[model] * _LATFACTOR[scen]
    latency = med * rng.lognormal(0.0, _M_SIGMA[model]) + n_calls * rng.uniform(80, 600, size=n)
    latency = np.where(status == TIMEOUT, _TIMEOUT[scen] + rng.uniform(0, 500, size=n), latency)
    latency = np.round(np.where(status == ERROR, rng.uniform(40, 2500, size=n), latency), 1)
    in_len = np.fromiter((len(x) for x in ev["inputs"]), dtype=np.int64, count=n)
    out_len = np.fromiter((len(x) if x is not None else 0 for x in ev["outputs"]), dtype=np.int64, count=n)
    in_tok = _PROMPT_TOKENS[pv] + np.ceil(in_len / 3.7).astype(np.int64) + ev["extra_tokens"] \
        + n_calls * rng.integers(60, 420, size=n)
    out_tok = np.round(out_len / 3.6 * rng.uniform(0.92, 1.08, size=n)).astype(np.int64)
    out_tok = np.where((status == ERROR) | (status == TIMEOUT), 0, out_tok)
    dp_cell, dp_json = _decision_paths(rng, scen, status, conf, route, audit)
    tc_col, tc_json = _tool_call_column(calls, n)
    offs = offsets(rng, n, w.EVENT_OFFSETS)
    stamps = format_timestamps(t, offs, rng.random(n) < 0.65, rng.random(n) < 0.03)
    trace = trace_ids(ctx.seed, d, np.arange(n)).zip_with(pl.Series(rng.random(n) < 0.97), _nulls(n))
    return pl.DataFrame({
        "event_id": ids(ctx.seed, EVENT_IDS, d, np.arange(n), "evt_"),
        "occurred_at": stamps,
        "scenario": labels(scen, _SCENARIO_NAMES),
        "model": labels(model, _MODEL_NAMES),
        "prompt_version": labels(np.where(pv == 3, 0, pv), ("v1", "v2", "v3")).zip_with(pl.Series(pv != 3), _nulls(n)),
        "autonomy_level": labels(scen, [s.autonomy for s in _S]),
        "input_text": pl.Series(ev["inputs"], dtype=pl.String),
        "output_text": pl.Series(ev["outputs"], dtype=pl.String),
        "confidence": pl.Series(conf).fill_nan(None),
        "status": labels(status, EVENT_STATUSES),
        "latency_ms": latency,
        "input_tokens": in_tok,
        "output_tokens": out_tok,
        "tool_calls": tc_col,
        "tool_calls_json": tc_json,
        "decision_path": dp_cell,
        "decision_path_json": dp_json,
        "trace_id": trace,
        "attributes": _attributes(rng, scen, model, status, calls),
    }, schema=EVENT_SCHEMA)


def _review_delay(rng: np.random.Generator, n: int) -> np.ndarray:
    """Human review delay (ms): mostly within hours, some the next day, a few up to ~4.5 days."""
    (fast_share, mean, floor), (day_share, day_lo, day_hi) = w.REVIEW_DELAY_FAST, w.REVIEW_DELAY_DAY
    u = rng.random(n)
    fast = rng.exponential(mean, n) + floor
    day = rng.uniform(day_lo, day_hi, n)
    slow = rng.uniform(*w.REVIEW_DELAY_SLOW, n)
    return np.where(u < fast_share, fast, np.where(u < day_share, day, slow)).astype(np.int64)


def _interventions(ctx: Context, d: int, rng: np.random.Generator, t: np.ndarray, scen: np.ndarray, status: np.ndarray,
                   latent: np.ndarray, mode: np.ndarray, route: np.ndarray, audit: np.ndarray, ev: dict,
                   late: np.ndarray, event_ids: pl.Series) -> dict:
    n = len(t)
    reviewable = (status == OK) | (status == FALLBACK)
    lat = np.where(latent >= 0, latent, 0)
    bad = np.isin(latent, list(w.BAD_LATENT))
    human = reviewable & ((route == SHADOW) | (route == HUMAN)) & (rng.random(n) < _REVIEW[scen])
    audited = reviewable & (route == AUTO) & audit
    rev_rate = np.where(mode == w.MODE_INDEX[w.EMERGING_MODE], w.EMERGING_REVERT_RATE, _REVERT[scen])
    reverted = reviewable & (route == AUTO) & ~audit & bad & (rng.random(n) < rev_rate)
    action = np.full(n, -1, np.int64)
    action = np.where(human & (route == HUMAN), _ACTIONS_BY_LATENT["human_review"][lat], action)
    action = np.where(human & (route == SHADOW), _ACTIONS_BY_LATENT["shadow"][lat], action)
    action = np.where(audited, _ACTIONS_BY_LATENT["audit"][lat], action)
    action = np.where(reverted, REVERTED, action)
    heavy = (action == EDITED) & ((latent == 2) | (latent == 3))
    multi = human & np.isin(action, [ACCEPTED, EDITED, REJECTED]) & (rng.random(n) < w.MULTI_INTERVENTION_SHARE)

    delay = _review_delay(rng, n)
    shadow_delay = rng.uniform(*w.SHADOW_REVIEW_DELAY, n).astype(np.int64)
    skew = rng.uniform(*w.CLOCK_SKEW, n).astype(np.int64)
    day_start = t - (t - ctx.day0_ms) % DAY_MS
    use_skew = (route == SHADOW) & (rng.random(n) < w.CLOCK_SKEW_SHARE) & (t - skew >= day_start)
    shadow_delay = np.where(use_skew, -skew, shadow_delay)
    audit_delay = rng.uniform(*w.AUDIT_DELAY, n).astype(np.int64)
    u = rng.random(n)
    fast_share, fast_lo, fast_hi = w.REVERT_DELAY_FAST
    revert_delay = np.where(u < fast_share, rng.uniform(fast_lo, fast_hi, n),
                            rng.uniform(*w.REVERT_DELAY_SLOW, n)).astype(np.int64)
    first = t + np.minimum(delay, w.FIRST_STEP_CAP)
    second = first + rng.uniform(*w.SECOND_STEP_DELAY, n).astype(np.int64)
    t_final = np.select([multi, human & (route == SHADOW), human, audited, reverted],
                        [second, t + shadow_delay, t + delay, t + audit_delay, t + revert_delay], 0)

    fin = np.flatnonzero(action >= 0)
    pre = np.flatnonzero(multi)
    ev_idx = np.concatenate([fin, pre])
    is_pre = np.concatenate([np.zeros(len(fin), bool), np.ones(len(pre), bool)])
    t_iv = np.concatenate([t_final[fin], first[pre]])
    act = np.concatenate([action[fin], np.full(len(pre), ESCALATED)])
    day_iv = (t_iv - ctx.day0_ms) // DAY_MS
    keep = day_iv <= ctx.days - 1
    order = np.lexsort((ev_idx[keep], t_iv[keep]))
    ev_idx, is_pre, t_iv, act, day_iv = (x[keep][order] for x in (ev_idx, is_pre, t_iv, act, day_iv))
    m = len(ev_idx)

    # Final outcome of each event, from what is written.
    outcome = np.full(n, UNREVIEWED, np.int64)
    written_pre = np.zeros(n, bool)
    written_pre[ev_idx[is_pre]] = True
    outcome[written_pre] = ESCALATED
    fin_w = ev_idx[~is_pre]
    outcome[fin_w] = act[~is_pre]

    # Per-intervention fields.
    ks = rng.integers(0, 1 << 30, size=m).tolist()
    us = rng.random(m).tolist()
    us2 = rng.random(m).tolist()
    rows, outputs = ev["rows"], ev["outputs"]
    final_text: list = [None] * m
    reason: list = [None] * m
    comment: list = [None] * m
    kind: list = [""] * m
    changed_accept = 0
    for j, (i, p, a, k, u1, u2) in enumerate(zip(ev_idx.tolist(), is_pre.tolist(), act.tolist(), ks, us, us2)):
        s = _S[scen[i]]
        spec = SPECS[s.name]
        out = outputs[i]
        md = int(mode[i])
        if p:
            kind[j] = "escalated"
            reason[j] = fb.choose(fb.ESCALATION_CODES, k) if u1 < 0.7 else None
            comment[j] = fb.choose(fb.ESCALATION_COMMENTS, k // 7)
            continue
        if a == ACCEPTED:
            kind[j] = "accepted"
            if route[i] == SHADOW:
                final_text[j] = out
            elif u1 < s.changed_accept_share:
                final_text[j] = light_edit(spec, out, k)
                changed_accept += 1
                outcome[i] = EDITED
            elif u1 < s.changed_accept_share + w.ACCEPTED_SAME_TEXT_SHARE:
                final_text[j] = out
            comment[j] = fb.choose(fb.ACCEPT_COMMENTS, k) if u2 < 0.12 else None
            continue
        if a == EDITED and not heavy[i]:
            kind[j] = "light"
            final_text[j] = light_edit(spec, out, k)
            reason[j] = fb.choose(fb.LIGHT_CODES, k) if u1 < 0.55 else None
            comment[j] = fb.choose(fb.LIGHT_COMMENTS, k // 5) if u2 < 0.5 else None
            continue
        kind[j] = "heavy" if a == EDITED else ACTIONS[a]
        if a == EDITED:
            final_text[j] = rewrite(spec, rows[i], k)
        if md >= 0:
            name = w.FAILURE_MODES[md].name
            reason[j] = fb.mode_reason(name, u1, k)
            if u2 < 0.85:
                text = fb.mode_comment(s.name, name, rows[i], k)
                comment[j] = ("Reverted: " + text) if a == REVERTED and k % 2 else text

    pools = np.array(ctx.reviewer_pools)[scen[ev_idx]] if m else np.zeros((0, w.REVIEWERS_PER_SCENARIO), np.int64)
    reviewer = pools[np.arange(m), rng.integers(w.REVIEWERS_PER_SCENARIO, size=m)] if m else np.zeros(0, np.int64)
    rev_off = np.array(ctx.reviewer_offsets, dtype=np.int64)[reviewer]
    stamps = format_timestamps(t_iv, rev_off, rng.random(m) < 0.5, rng.random(m) < 0.02)
    medians = np.array([_MEDIAN_SECONDS[x] for x in kind]) * _REVIEW_FACTOR[scen[ev_idx]] if m else np.zeros(0)
    seconds = fb.review_seconds(rng, medians)
    frame = pl.DataFrame({
        "intervention_id": ids(ctx.seed, INTERVENTION_IDS, d, np.arange(m), "iv_"),
        "event_id": event_ids.gather(ev_idx) if m else pl.Series([], dtype=pl.String),
        "occurred_at": stamps,
        "action": labels(act, ACTIONS),
        "reviewer_id": labels(reviewer, [f"rv-{x:03d}" for x in range(w.N_REVIEWERS)]),
        "final_text": pl.Series(final_text, dtype=pl.String),
        "reason_code": pl.Series(reason, dtype=pl.String),
        "comment": pl.Series(comment, dtype=pl.String),
        "review_seconds": seconds,
    }, schema=INTERVENTION_SCHEMA)
    ev_day = d + late.astype(np.int64)
    frame = frame.with_columns(pl.Series("_t", t_iv, dtype=pl.Int64), pl.Series("_day", day_iv, dtype=pl.Int64),
                               pl.Series("_event_t", t[ev_idx], dtype=pl.Int64))
    both = np.zeros(n, bool)
    both[fin_w] = True
    stats = {
        "interventions_valid": m,
        "accepted_with_changed_text": changed_accept,
        "interventions_delivered_before_their_event": int((day_iv < ev_day[ev_idx]).sum()),
        "interventions_within_clock_skew": int((t_iv < t[ev_idx]).sum()),
        "events_with_two_interventions": int((both & written_pre).sum()),
    }
    return {"frame": frame, "outcome": outcome, "stats": stats}
