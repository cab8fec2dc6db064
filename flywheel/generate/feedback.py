"""What reviewers write: noisy reason codes and free-text comments per failure mode.

A failure mode has several phrasings (synonyms, detail slots filled from the event's own slots,
e.g. the amounts or the table names), some scenario-specific variants, and a noisy reason code:
usually a specific code (spelled a few ways), sometimes the generic "other", sometimes missing.
Comments are sometimes missing, lower-cased or decorated. Light edits, plain accepts and
procedural escalations have their own, failure-free vocabulary.
"""

from __future__ import annotations

from typing import Any

import numpy as np

MODE_COMMENTS: dict[str, tuple[str, ...]] = {
    "wrong_refund_amount": (
        "Refund amount is wrong: should be {amount}, draft said {wrong_amount}.",
        "incorrect amount ({wrong_amount}); customer actually paid {amount}",
        "Amount doesn't match what was charged. Corrected to {amount}.",
        "AI miscalculated the refund (forgot the shipping fee?). Fixed to {amount}.",
        "wrong figure — {wrong_amount} vs {amount}",
        "Refund value off, recalculated from the order: {amount}.",
        "The credit/refund number is not right, {wrong_amount} is way off.",
    ),
    "hallucinated_policy": (
        "Made up a policy: \"{claim}\" does not exist.",
        "hallucinated: {claim}. we don't offer that",
        "Draft promises {claim}. Not our policy, removed.",
        "Invented a commitment we can't honour ({claim}).",
        "The bot cites {claim}, which is nowhere in the KB.",
        "false statement about our terms — legal would not be happy",
        "Fabricated policy again. Removed the bit about {claim}.",
    ),
    "missing_required_info": (
        "Missing {missing}.",
        "Draft leaves out {missing}; added it.",
        "incomplete - no mention of {missing}",
        "Customer needs {missing}, the answer doesn't include it.",
        "forgot {missing} again",
        "Too vague. Had to add {missing}.",
    ),
    "tone_too_casual": (
        "Tone way too casual for a customer reply.",
        "Unprofessional tone (slang/emoji), rewrote it.",
        "too chatty, removed the jokes",
        "Please no 'lol' or emojis with customers.",
        "tone: informal, not our brand voice",
        "Reads like a text to a friend. Made it professional.",
    ),
    "wrong_sql_join": (
        "Joined {table_a} to {table_b} on {wrong_join}; should be {join}.",
        "wrong join key, duplicates rows",
        "JOIN is wrong - fan-out on {table_b}, the totals are inflated",
        "Join condition incorrect ({wrong_join} instead of {join}).",
        "join on the wrong column, numbers were 3x too high",
        "bad join between {table_a} and {table_b}",
    ),
    "hallucinated_schema": (
        "Column {fake} doesn't exist.",
        "invented a column ({fake}) - query fails",
        "query references non-existent field {fake}",
        "Hallucinated schema, there's no {fake} in {table_a}.",
        "{fake}?? not a real column",
    ),
    "missed_bug": (
        "Missed {bug} in {file}.",
        "approved code with {bug}",
        "didn't catch {bug}",
        "The real issue is {bug}; the AI only commented on style.",
        "review is useless here — missed {bug}",
    ),
    "false_positive_finding": (
        "Flagged {fp} — not an issue.",
        "false positive, the code is fine",
        "noise: the comment about {fp} is wrong",
        "AI complains about {fp}. Ignore.",
        "not a bug (it's {fp})",
    ),
    "wrong_terminology": (
        "'{wrong_term}' should be '{term}' per the glossary.",
        "wrong term: {wrong_term} -> {term}",
        "Terminology off, we always say {term}.",
        "glossary violation ({wrong_term})",
        "Use the approved term {term}, not {wrong_term}.",
    ),
    "misrouted_ticket": (
        "Sent to {wrong_queue}, belongs in {queue}.",
        "misrouted -> {queue}",
        "wrong queue ({wrong_queue}); this is a {queue} issue",
        "Moved to {queue}. Triage keeps putting these in {wrong_queue}.",
        "routing error",
    ),
    "omitted_key_clause": (
        "Summary omits the {clause}.",
        "missed the {clause}!! that's the important part",
        "No mention of the {clause}; added.",
        "key clause missing: {clause}",
        "Incomplete summary: {clause} not covered.",
    ),
    "stale_tracking_info": (
        "Tracking status outdated, {carrier} shows something else.",
        "stale tracking data, the ETA is not {stale_eta}",
        "Gave old tracking info; parcel is actually {status_phrase}.",
        "outdated shipment status ({stale_status})",
        "used cached carrier data again",
    ),
    "pii_exposure": (
        "Reply exposes {pii}!! Removed.",
        "PII leak: response contained {pii}",
        "draft included {pii} - privacy incident",
        "Sensitive data in the answer ({pii}). Reporting to security.",
        "privacy issue, leaked {pii}",
        "NEVER include {pii} in a reply",
    ),
}

SCENARIO_COMMENTS: dict[tuple[str, str], tuple[str, ...]] = {
    ("translation_de", "tone_too_casual"): ("Used 'du' instead of 'Sie'.", "informal address (du) — style guide requires Sie",
                                            "Duzen geht nicht, bitte Sie-Form", "tone: must be formal German"),
    ("translation_de", "missing_required_info"): ("Translation drops {missing}.", "second sentence missing in the German text",
                                                  "incomplete translation"),
    ("code_review", "tone_too_casual"): ("Review comment is rude/unprofessional.", "tone: please keep reviews respectful",
                                         "no emoji-snark in code reviews"),
    ("code_review", "missing_required_info"): ("Vague review, doesn't say {missing}.", "not actionable: missing {missing}"),
    ("contract_summary", "hallucinated_policy"): ("Summary invents {claim}; not in the contract.",
                                                  "there is no {claim} in this agreement", "hallucinated clause ({claim})"),
    ("ticket_triage", "missing_required_info"): ("Summary useless ('Customer needs help.').", "no usable summary",
                                                 "triage summary too vague"),
}

MODE_REASON_CODES: dict[str, tuple[str, ...]] = {
    "wrong_refund_amount": ("wrong_amount", "WRONG_AMOUNT", "incorrect_amount"),
    "hallucinated_policy": ("hallucination", "policy_error"),
    "missing_required_info": ("incomplete", "missing_info"),
    "tone_too_casual": ("tone", "style"),
    "wrong_sql_join": ("wrong_logic", "sql_error"),
    "hallucinated_schema": ("hallucination", "sql_error"),
    "missed_bug": ("missed_issue",),
    "false_positive_finding": ("false_positive",),
    "wrong_terminology": ("terminology", "glossary"),
    "misrouted_ticket": ("wrong_queue", "misrouted"),
    "omitted_key_clause": ("incomplete", "missing_clause"),
    "stale_tracking_info": ("outdated_info", "wrong_info"),
    "pii_exposure": ("pii", "privacy", "security"),
}
GENERIC_REASON = "other"

LIGHT_COMMENTS = ("minor wording", "tweaked the greeting", "small fix", "typo", "shortened a bit", "style",
                  "adjusted phrasing", "added a line")
LIGHT_CODES = ("style", "minor_edit", "typo")
ACCEPT_COMMENTS = ("lgtm", "looks good", "👍", "ok", "fine as is", "Perfect.", "good draft")
ESCALATION_COMMENTS = ("needs approval from team lead", "escalating: amount over my approval limit",
                       "VIP customer, passing to senior", "unsure about the policy here, asking legal",
                       "second opinion needed", "customer threatens chargeback - escalating")
ESCALATION_CODES = ("needs_approval", "policy_question")


def mode_comment(scenario: str, mode: str, row: dict[str, Any], k: int) -> str:
    """One reviewer's comment on a draft with failure `mode`, styled by the random integer `k`."""
    options = SCENARIO_COMMENTS.get((scenario, mode))
    if options is None or k % 3 == 0:
        options = MODE_COMMENTS[mode]
    text = options[(k // 3) % len(options)].format_map(row)
    return _style(text, k // 97)


def _style(text: str, k: int) -> str:
    r = k % 40
    if r < 6:
        return text.lower()
    if r < 9:
        return text + " (again)"
    if r < 11:
        return "FYI: " + text
    if r < 12:
        return text + " Please fix the prompt."
    return text


def mode_reason(mode: str, u: float, k: int) -> str | None:
    """A noisy reason code for `mode`: specific (65%), generic 'other' (20%) or missing (15%)."""
    if u < 0.65:
        codes = MODE_REASON_CODES[mode]
        return codes[k % len(codes)]
    if u < 0.85:
        return GENERIC_REASON
    return None


def choose(values: tuple[str, ...], k: int) -> str:
    """values[k mod len]: a deterministic pick from a small vocabulary."""
    return values[k % len(values)]


def review_seconds(rng: np.random.Generator, medians: np.ndarray) -> np.ndarray:
    """Review durations (seconds, one decimal) around the given medians, log-normally spread."""
    return np.round(medians * rng.lognormal(0.0, 0.6, size=len(medians)), 1)


def all_comment_templates() -> list[tuple[str | None, str, str]]:
    """(scenario or None, mode, template) of every comment template, for consistency tests."""
    out: list[tuple[str | None, str, str]] = [(None, m, t) for m, ts in MODE_COMMENTS.items() for t in ts]
    out += [(s, m, t) for (s, m), ts in SCENARIO_COMMENTS.items() for t in ts]
    return out
