"""The simulated world: scenarios, models, prompt versions, tools and failure modes, with their rates.

Everything the generator draws from is a constant here, so that `truth.json` can state it. A
scenario has a volume share, an autonomy level (and a confidence gate when gated), per-status
failure rates, the *latent* outcome probabilities (what a reviewer would do with an `ok` draft if
they saw it: accept, light edit, heavy edit, reject, escalate), the tools it calls and the failure
modes that drive its bad outcomes. Prompt version v3 is rolled out mid-period and regresses one
scenario (`REGRESSED_SCENARIO`); one failure mode (`EMERGING_MODE`) appears late in the period. A run
generated without changes (`generate(..., changes=False)`) has neither: v3 keeps v2's rates and the
emerging mode never appears.

The team runs mature scenarios alone because they earned it: the gated and autonomous ones accept
about 95% of reviewed drafts as-is with severe failures (rejected, reverted, error) around 1-2% of
events, and reverts stay rare; `sql_generation` is a stable assist scenario good enough for the
policy to promote (its confident drafts are accepted ~99%); the others stay clearly below the
promotion target.
"""

from __future__ import annotations

from dataclasses import dataclass

LATENT: tuple[str, ...] = ("accept", "light_edit", "heavy_edit", "reject", "escalate")
BAD_LATENT = frozenset({2, 3, 4})  # heavy_edit, reject, escalate carry a failure mode

FINAL_OUTCOMES: tuple[str, ...] = ("accepted", "edited", "rejected", "escalated", "reverted", "unreviewed")

PROMPT_VERSIONS: tuple[str, ...] = ("v1", "v2", "v3")
V3_SHARE_ON_ROLLOUT_DAY = 0.5
V3_SHARE_AFTER = 0.9
UNVERSIONED_SHARE = 0.004  # events logged without a prompt_version

LATE_EVENT_SHARE = 0.01
EXACT_DUPLICATE_SHARE = 0.005
MALFORMED_SHARE = 0.005
MULTI_INTERVENTION_SHARE = 0.035  # of human-reviewed drafts: escalated first, resolved later
ACCEPTED_CHANGED_TEXT_SHARE = 0.03  # default, of non-shadow `accepted`: final_text differs from the draft
ACCEPTED_SAME_TEXT_SHARE = 0.17  # of non-shadow `accepted`: final_text repeats the draft
CLOCK_SKEW_SHARE = 0.01  # of shadow reviews: reviewer clock a few minutes behind the event
PLAIN_DECISION_PATH_SHARE = 0.02

# Time of day of an event (ms after UTC midnight): this share ~ Normal(mean, sd) wrapped to the day,
# the rest uniform over the day.
TIME_OF_DAY_BUSY = (0.72, 14.5 * 3.6e6, 3.6 * 3.6e6)

# What a human does with a draft, by latent outcome (LATENT order) and how they meet it.
ACTIONS_BY_LATENT: dict[str, tuple[str, ...]] = {
    "human_review": ("accepted", "edited", "edited", "rejected", "escalated"),
    "shadow": ("accepted", "edited", "edited", "edited", "escalated"),
    "audit": ("accepted", "edited", "reverted", "reverted", "escalated"),
}

# Delays (ms) from an event to the human action on it. A human review of a routed draft: up to the
# first cumulative share exponential(mean) + floor, up to the second uniform(low, high), the rest
# uniform(low, high). A two-step review escalates at min(review delay, cap) and is resolved a
# uniform(low, high) later. Shadow reviews come a uniform delay later (a CLOCK_SKEW_SHARE of them
# stamped a uniform skew before the event); audits and reverts of actions taken alone have their
# own (slower) delays.
REVIEW_DELAY_FAST = (0.55, 1.5 * 3.6e6, 30_000)  # cumulative share, exponential mean, floor
REVIEW_DELAY_DAY = (0.85, 2 * 3.6e6, 30 * 3.6e6)  # cumulative share, low, high
REVIEW_DELAY_SLOW = (30 * 3.6e6, 108 * 3.6e6)
FIRST_STEP_CAP = 90 * 3_600_000
SECOND_STEP_DELAY = (20 * 60_000, 30 * 3.6e6)
SHADOW_REVIEW_DELAY = (2 * 60_000, 45 * 60_000)
CLOCK_SKEW = (10_000, 240_000)
AUDIT_DELAY = (4 * 3.6e6, 110 * 3.6e6)
REVERT_DELAY_FAST = (0.4, 5 * 60_000, 3 * 3.6e6)  # share, low, high
REVERT_DELAY_SLOW = (3 * 3.6e6, 96 * 3.6e6)
# The longest any human action can come after its event (two-step reviews): events dated at least
# this long before the end of the period have every intervention written.
MAX_REVIEW_DAYS = (FIRST_STEP_CAP + SECOND_STEP_DELAY[1]) / 86_400_000

# Latent outcome probabilities of a `fallback` event (a canned reply was served).
FALLBACK_PROBS: tuple[float, ...] = (0.25, 0.30, 0.20, 0.15, 0.10)

# Confidence ~ Beta(a, b) by latent outcome: informative but overlapping.
CONFIDENCE_BETA: tuple[tuple[float, float], ...] = ((6.5, 2.0), (5.0, 2.6), (3.6, 3.0), (2.6, 3.4), (2.2, 3.0))


@dataclass(frozen=True)
class Model:
    """An LLM: latency profile, provider, error-rate multiplier and confidence bias."""

    name: str
    system: str
    latency_median_ms: float
    latency_sigma: float
    error_multiplier: float
    confidence_bias: float


MODELS: tuple[Model, ...] = (
    Model("gpt-4o-2024-08-06", "openai", 1400.0, 0.45, 1.0, 0.0),
    Model("claude-3-5-sonnet-20241022", "anthropic", 1800.0, 0.40, 0.8, -0.02),
    Model("llama-3.1-70b-instruct", "meta", 900.0, 0.55, 1.6, 0.06),
)
MODEL_INDEX = {m.name: i for i, m in enumerate(MODELS)}

# System-prompt tokens per prompt version (added to input_tokens).
PROMPT_TOKENS: dict[str, int] = {"v1": 420, "v2": 515, "v3": 640}


@dataclass(frozen=True)
class Tool:
    """A tool the AI may call, with its own error and denial rates."""

    name: str
    error_rate: float
    denial_rate: float


TOOLS: tuple[Tool, ...] = (
    Tool("lookup_order", 0.010, 0.0),
    Tool("check_refund_policy", 0.005, 0.0),
    Tool("issue_refund", 0.020, 0.070),
    Tool("track_shipment", 0.040, 0.0),
    Tool("describe_table", 0.010, 0.0),
    Tool("run_sql", 0.050, 0.030),
    Tool("read_diff", 0.005, 0.0),
    Tool("run_linter", 0.020, 0.0),
    Tool("run_tests", 0.060, 0.010),
    Tool("glossary_lookup", 0.010, 0.0),
    Tool("fetch_document", 0.020, 0.005),
    Tool("extract_clauses", 0.030, 0.0),
    Tool("search_kb", 0.010, 0.0),
    Tool("fetch_article", 0.010, 0.0),
    Tool("set_priority", 0.005, 0.020),
    Tool("route_ticket", 0.010, 0.0),
    Tool("lookup_invoice", 0.010, 0.0),
    Tool("lookup_payment", 0.015, 0.010),
    Tool("fetch_product_spec", 0.010, 0.0),
    Tool("check_brand_terms", 0.005, 0.0),
)
TOOL_INDEX = {t.name: i for i, t in enumerate(TOOLS)}


@dataclass(frozen=True)
class FailureMode:
    """A recurring reason drafts go wrong; `kind` is content, system or emerging."""

    name: str
    kind: str
    description: str


FAILURE_MODES: tuple[FailureMode, ...] = (
    FailureMode("wrong_refund_amount", "content", "the draft states or issues the wrong refund or credit amount"),
    FailureMode("hallucinated_policy", "content", "the draft invents a policy, commitment or clause that does not exist"),
    FailureMode("missing_required_info", "content", "the draft leaves out information the reader needs"),
    FailureMode("tone_too_casual", "content", "slang, emoji or informal address where the brand voice is formal"),
    FailureMode("wrong_sql_join", "content", "the query joins on the wrong key or with the wrong join type"),
    FailureMode("hallucinated_schema", "content", "the query uses a column or table that does not exist"),
    FailureMode("missed_bug", "content", "the code review misses the real defect in the diff"),
    FailureMode("false_positive_finding", "content", "the code review flags something that is not a problem"),
    FailureMode("wrong_terminology", "content", "a term that violates the glossary or brand terms"),
    FailureMode("misrouted_ticket", "content", "the ticket is routed to the wrong queue"),
    FailureMode("omitted_key_clause", "content", "the contract summary omits a key clause"),
    FailureMode("stale_tracking_info", "content", "the reply uses outdated shipment tracking data"),
    FailureMode("timeout", "system", "the model or a tool timed out; no output"),
    FailureMode("service_error", "system", "the model or a tool returned an error; no output"),
    FailureMode("pii_exposure", "emerging", "the reply exposes personal data (card numbers, another customer's details)"),
)
MODE_INDEX = {m.name: i for i, m in enumerate(FAILURE_MODES)}
EMERGING_MODE = "pii_exposure"
EMERGING_SCENARIOS: tuple[str, ...] = ("refund_request", "order_status")
# Share of the emerging scenarios' events hit on day first_day + k: grows, then plateaus.
EMERGING_RATE_START = 0.04
EMERGING_RATE_STEP = 0.03
EMERGING_RATE_MAX = 0.25
EMERGING_REVERT_RATE = 0.6
EMERGING_LATENT_PROBS: tuple[float, ...] = (0.0, 0.0, 0.3, 0.5, 0.2)  # latent outcome of an event hit by it


@dataclass(frozen=True)
class Scenario:
    """One category of work and how the AI behaves and is supervised in it."""

    name: str
    share: float
    autonomy: str
    gate: float | None
    status_rates: tuple[float, float, float]  # error, timeout, fallback
    probs: tuple[float, ...]  # latent outcome probabilities (LATENT order)
    modes: dict[str, float]  # failure mode -> weight among bad latent outcomes
    tools: tuple[tuple[str, float], ...]  # (tool, probability the tool is called)
    models: dict[str, float]
    v1_share: float  # share of v1 among v1/v2 traffic
    review_rate: float = 0.97  # of drafts routed to a human
    audit_rate: float = 0.0  # of actions taken alone, sampled for audit
    revert_rate: float = 0.0  # of bad actions taken alone that a human reverts
    changed_accept_share: float = ACCEPTED_CHANGED_TEXT_SHARE  # of non-shadow `accepted`: final_text differs
    timeout_ms: float = 30000.0
    latency_factor: float = 1.0
    channels: tuple[str, ...] = ("email", "chat", "web")
    locales: tuple[str, ...] = ("en-US", "en-GB")
    probs_v3: tuple[float, ...] | None = None  # latent outcome under v3, if it differs
    modes_v3: dict[str, float] | None = None


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("refund_request", 0.13, "gated", 0.85, (0.005, 0.004, 0.004), (0.965, 0.015, 0.008, 0.007, 0.005),
             {"wrong_refund_amount": 0.35, "hallucinated_policy": 0.25, "missing_required_info": 0.20, "tone_too_casual": 0.20},
             (("lookup_order", 0.95), ("check_refund_policy", 0.60), ("issue_refund", 0.55)),
             {"gpt-4o-2024-08-06": 0.7, "claude-3-5-sonnet-20241022": 0.3}, 0.30,
             audit_rate=0.05, revert_rate=0.15, changed_accept_share=0.005, channels=("email", "chat", "web_form")),
    Scenario("order_status", 0.17, "autonomous", None, (0.004, 0.003, 0.004), (0.978, 0.008, 0.006, 0.005, 0.003),
             {"stale_tracking_info": 0.35, "missing_required_info": 0.30, "hallucinated_policy": 0.20, "tone_too_casual": 0.15},
             (("lookup_order", 0.98), ("track_shipment", 0.80)),
             {"llama-3.1-70b-instruct": 0.6, "gpt-4o-2024-08-06": 0.4}, 0.20,
             audit_rate=0.12, revert_rate=0.25, changed_accept_share=0.005, latency_factor=0.7,
             channels=("chat", "web", "whatsapp")),
    Scenario("sql_generation", 0.10, "assist", None, (0.006, 0.010, 0.004), (0.980, 0.008, 0.005, 0.004, 0.003),
             {"wrong_sql_join": 0.45, "hallucinated_schema": 0.30, "missing_required_info": 0.25},
             (("describe_table", 0.70), ("run_sql", 0.85)),
             {"claude-3-5-sonnet-20241022": 0.75, "gpt-4o-2024-08-06": 0.25}, 0.40,
             review_rate=0.98, changed_accept_share=0.005, latency_factor=1.5, channels=("bi_tool", "slack"),
             locales=("en-US",)),
    Scenario("code_review", 0.07, "assist", None, (0.010, 0.020, 0.005), (0.48, 0.22, 0.10, 0.15, 0.05),
             {"missed_bug": 0.50, "false_positive_finding": 0.30, "tone_too_casual": 0.10, "missing_required_info": 0.10},
             (("read_diff", 1.0), ("run_linter", 0.60), ("run_tests", 0.30)),
             {"claude-3-5-sonnet-20241022": 0.85, "gpt-4o-2024-08-06": 0.15}, 0.25,
             review_rate=0.98, timeout_ms=60000.0, latency_factor=2.0, channels=("github",), locales=("en-US",)),
    Scenario("translation_de", 0.09, "gated", 0.80, (0.004, 0.003, 0.002), (0.966, 0.018, 0.007, 0.006, 0.003),
             {"wrong_terminology": 0.60, "tone_too_casual": 0.25, "missing_required_info": 0.15},
             (("glossary_lookup", 0.70),),
             {"gpt-4o-2024-08-06": 0.8, "claude-3-5-sonnet-20241022": 0.2}, 0.15,
             audit_rate=0.05, revert_rate=0.10, changed_accept_share=0.005, latency_factor=0.9, channels=("cms", "email"),
             locales=("de-DE", "de-AT", "de-CH")),
    Scenario("contract_summary", 0.05, "shadow", None, (0.010, 0.030, 0.0), (0.35, 0.30, 0.20, 0.10, 0.05),
             {"omitted_key_clause": 0.50, "hallucinated_policy": 0.25, "missing_required_info": 0.25},
             (("fetch_document", 1.0), ("extract_clauses", 0.50)),
             {"claude-3-5-sonnet-20241022": 0.9, "gpt-4o-2024-08-06": 0.1}, 0.35,
             review_rate=1.0, timeout_ms=60000.0, latency_factor=2.5, channels=("legal_portal",), locales=("en-US", "en-GB")),
    Scenario("ticket_triage", 0.15, "autonomous", None, (0.003, 0.002, 0.004), (0.976, 0.009, 0.006, 0.006, 0.003),
             {"misrouted_ticket": 0.65, "missing_required_info": 0.35},
             (("search_kb", 0.40), ("set_priority", 0.90), ("route_ticket", 1.0)),
             {"llama-3.1-70b-instruct": 0.85, "gpt-4o-2024-08-06": 0.15}, 0.10,
             audit_rate=0.12, revert_rate=0.25, changed_accept_share=0.005, latency_factor=0.6,
             channels=("email", "web", "phone_transcript")),
    Scenario("kb_answer", 0.12, "assist", None, (0.006, 0.004, 0.010), (0.78, 0.08, 0.05, 0.05, 0.04),
             {"hallucinated_policy": 0.35, "missing_required_info": 0.35, "tone_too_casual": 0.30},
             (("search_kb", 0.95), ("fetch_article", 0.60)),
             {"gpt-4o-2024-08-06": 0.6, "claude-3-5-sonnet-20241022": 0.4}, 0.20,
             review_rate=0.98, channels=("help_center", "chat", "slack"),
             probs_v3=(0.47, 0.10, 0.12, 0.23, 0.08),
             modes_v3={"hallucinated_policy": 0.70, "missing_required_info": 0.20, "tone_too_casual": 0.10}),
    Scenario("invoice_dispute", 0.05, "shadow", None, (0.010, 0.010, 0.0), (0.40, 0.25, 0.15, 0.12, 0.08),
             {"wrong_refund_amount": 0.50, "hallucinated_policy": 0.30, "missing_required_info": 0.20},
             (("lookup_invoice", 1.0), ("lookup_payment", 0.60)),
             {"gpt-4o-2024-08-06": 0.5, "claude-3-5-sonnet-20241022": 0.5}, 0.50,
             review_rate=1.0, channels=("email", "billing_portal")),
    Scenario("product_copy", 0.07, "gated", 0.90, (0.005, 0.005, 0.0), (0.958, 0.022, 0.009, 0.007, 0.004),
             {"wrong_terminology": 0.45, "tone_too_casual": 0.25, "missing_required_info": 0.30},
             (("fetch_product_spec", 0.90), ("check_brand_terms", 0.40)),
             {"gpt-4o-2024-08-06": 0.5, "llama-3.1-70b-instruct": 0.5}, 0.30,
             audit_rate=0.05, revert_rate=0.10, changed_accept_share=0.005, latency_factor=1.2, channels=("cms",),
             locales=("en-US",)),
)
SCENARIO_INDEX = {s.name: i for i, s in enumerate(SCENARIOS)}
REGRESSED_SCENARIO = "kb_answer"
REGRESSING_VERSION = "v3"

# Reviewer pool: ids and the UTC offsets (minutes) their tools stamp times with.
N_REVIEWERS = 48
REVIEWERS_PER_SCENARIO = 9

# UTC offsets (minutes) used in event timestamps, with their shares.
EVENT_OFFSETS: tuple[tuple[int, float], ...] = ((0, 0.78), (120, 0.07), (60, 0.03), (-300, 0.06), (-240, 0.02),
                                                (330, 0.02), (540, 0.02))


def rollout_day(days: int) -> int:
    """The day index on which v3 is rolled out."""
    return days // 2


def emerging_first_day(days: int) -> int:
    """The day index on which the emerging failure mode first appears."""
    return (2 * days) // 3


def emerging_rate(day: int, first_day: int) -> float:
    """Share of the emerging scenarios' events hit by the emerging mode on `day`."""
    if day < first_day:
        return 0.0
    return min(EMERGING_RATE_START + EMERGING_RATE_STEP * (day - first_day), EMERGING_RATE_MAX)


def outcome_probs(s: Scenario, version: str, changes: bool = True) -> tuple[float, ...]:
    """Latent outcome probabilities of scenario `s` under prompt `version` (v3 = v2 without changes)."""
    if changes and version == REGRESSING_VERSION and s.probs_v3 is not None:
        return s.probs_v3
    return s.probs


def mode_weights(s: Scenario, version: str, changes: bool = True) -> dict[str, float]:
    """Failure-mode weights of scenario `s` under prompt `version` (v3 = v2 without changes)."""
    if changes and version == REGRESSING_VERSION and s.modes_v3 is not None:
        return s.modes_v3
    return s.modes


def _assert_consistent() -> None:
    """The sample world's own invariants (shares and probabilities sum to 1, every mode and tool known),
    asserted once at import so that an edit to the tables above cannot generate a skewed world."""
    assert abs(sum(s.share for s in SCENARIOS) - 1.0) < 1e-9
    for s in SCENARIOS:
        for p in (s.probs, s.probs_v3 or s.probs):
            assert abs(sum(p) - 1.0) < 1e-9, s.name
        assert abs(sum(s.models.values()) - 1.0) < 1e-9, s.name
        assert all(m in MODE_INDEX for m in s.modes), s.name
        assert all(t in TOOL_INDEX for t, _ in s.tools), s.name
        assert "missing_required_info" in s.modes, s.name  # the fallback's failure mode
        assert s.probs_v3 is None or s.name not in EMERGING_SCENARIOS, s.name  # one kind of change per scenario
        assert 0.0 <= s.changed_accept_share and s.changed_accept_share + ACCEPTED_SAME_TEXT_SHARE <= 1.0, s.name
    assert abs(sum(EMERGING_LATENT_PROBS) - 1.0) < 1e-9 and all(EMERGING_LATENT_PROBS[i] == 0 for i in (0, 1))
    assert MAX_REVIEW_DAYS >= max(REVIEW_DELAY_SLOW[1], AUDIT_DELAY[1], REVERT_DELAY_SLOW[1]) / 86_400_000


_assert_consistent()
