"""Text specs of the internal-work scenarios: sql_generation, code_review, translation_de,
contract_summary and product_copy.

Same shape as `templates_customer.py`: vectorised slot samplers, templates, and failure modes shown
through flaw snippets or slot overrides (a wrong join key, an invented column, a missed bug, a
glossary violation, an omitted clause).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from flywheel.generate.texts import BLANK_SLOT, TextSpec, columns, digits, names, pick

# ----------------------------------------------------------------------------- sql_generation

# (table_a, alias_a, table_b, alias_b, join, wrong_join, date column, filter, metrics, groups, fake columns)
_SQL = (
    ("orders", "o", "customers", "c", "o.customer_id = c.id", "o.id = c.id", "o.created_at", "o.status = 'paid'",
     (("revenue", "SUM(o.amount)", "revenue"), ("number of orders", "COUNT(*)", "orders"),
      ("average order value", "AVG(o.amount)", "avg_order_value")),
     (("country", "c.country"), ("acquisition channel", "c.acquisition_channel"), ("customer segment", "c.segment")),
     ("o.net_revenue", "c.lifetime_value_usd", "o.is_refunded_flag")),
    ("subscriptions", "s", "accounts", "a", "s.account_id = a.id", "s.id = a.id", "s.started_at", "s.status = 'active'",
     (("active subscriptions", "COUNT(DISTINCT s.id)", "active_subscriptions"), ("MRR", "SUM(s.monthly_price)", "mrr")),
     (("plan", "s.plan"), ("region", "a.region"), ("industry", "a.industry")),
     ("s.churn_risk", "a.arr_usd", "s.renewal_flag")),
    ("payments", "p", "invoices", "i", "p.invoice_id = i.id", "p.id = i.customer_id", "p.paid_at", "i.status <> 'void'",
     (("collected amount", "SUM(p.amount)", "collected"),
      ("failed payments", "COUNT(*) FILTER (WHERE p.status = 'failed')", "failed_payments")),
     (("payment method", "p.method"), ("currency", "i.currency")),
     ("p.fee_amount_net", "i.due_bucket")),
    ("tickets", "t", "agents", "g", "t.assignee_id = g.id", "t.id = g.team_id", "t.closed_at", "t.status = 'closed'",
     (("median resolution time", "PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY t.resolution_minutes)", "median_resolution_min"),
      ("tickets closed", "COUNT(*)", "tickets_closed")),
     (("team", "g.team"), ("priority", "t.priority")),
     ("t.sla_breached_flag", "g.seniority_level")),
    ("events", "e", "users", "u", "e.user_id = u.id", "e.session_id = u.id", "e.ts", "e.event_type <> 'heartbeat'",
     (("daily active users", "COUNT(DISTINCT e.user_id)", "dau"), ("sessions", "COUNT(DISTINCT e.session_id)", "sessions")),
     (("platform", "e.platform"), ("country", "u.country")),
     ("e.engagement_score", "u.is_power_user")),
)
_RANGES = (("last 30 days", "30 days"), ("last 7 days", "7 days"), ("last quarter", "3 months"),
           ("last 12 months", "12 months"), ("last 90 days", "90 days"))


def _sql_slots(rng: np.random.Generator, n: int) -> dict[str, Any]:
    k = rng.integers(len(_SQL), size=n).tolist()
    u = rng.integers(0, 1 << 20, size=(n, 3)).tolist()
    rg = rng.integers(len(_RANGES), size=n).tolist()
    out: dict[str, list[Any]] = {c: [] for c in (
        "table_a", "aa", "table_b", "ab", "join", "join_out", "wrong_join", "metric_name", "metric_expr", "alias",
        "group_name", "group_expr", "group_alias", "date_range", "where", "where_out", "where_nodate", "where_fake", "fake")}
    for j, (a, b, c), r in zip(k, u, rg):
        ta, aa, tb, ab, join, wrong, dcol, filt, metrics, groups, fakes = _SQL[j]
        mname, mexpr, alias = metrics[a % len(metrics)]
        gname, gexpr = groups[b % len(groups)]
        fake = fakes[c % len(fakes)]
        rname, interval = _RANGES[r]
        where = f"WHERE {dcol} >= CURRENT_DATE - INTERVAL '{interval}'\n  AND {filt}"
        vals = (ta, aa, tb, ab, join, join, wrong, mname, mexpr, alias, gname, gexpr, gexpr.split(".")[1], rname,
                where, where, f"WHERE {filt}", f"{where}\n  AND {fake} IS NOT NULL", fake)
        for col, v in zip(out, vals):
            out[col].append(v)
    out["missing"] = ["the date filter"] * n
    return out


def _sql_args(tool: str, r: dict[str, Any], output: str | None) -> dict[str, Any]:
    if tool == "describe_table":
        return {"table": r["table_a"], "include_columns": True}
    return {"sql": output or "", "dry_run": True, "max_rows": 1000, "timeout_s": 30}


SQL_GENERATION = TextSpec(
    slots=_sql_slots,
    inputs=(
        "Can you write a query for {metric_name} by {group_name} for the {date_range}?",
        "need SQL: {metric_name} per {group_name}, {date_range}",
        "What's our {metric_name} split by {group_name} over the {date_range}? Use {table_a} and {table_b}.",
        "Give me {metric_name} by {group_name} ({date_range}). Exclude test data please.",
        "hey, quick one - {metric_name} by {group_name}, {date_range}, sorted desc",
    ),
    outputs=(
        "SELECT {group_expr} AS {group_alias},\n       {metric_expr} AS {alias}\nFROM {table_a} {aa}\nJOIN {table_b} {ab} ON {join_out}\n{where_out}\nGROUP BY 1\nORDER BY 2 DESC;{flaw}",
        "-- {metric_name} by {group_name}, {date_range}\nSELECT {group_expr}, {metric_expr} AS {alias}\nFROM {table_a} AS {aa}\nINNER JOIN {table_b} AS {ab} ON {join_out}\n{where_out}\nGROUP BY {group_expr}\nORDER BY {alias} DESC;{flaw}",
        "SELECT {group_expr} AS {group_alias}, {metric_expr} AS {alias}\nFROM {table_a} {aa} JOIN {table_b} {ab} ON {join_out}\n{where_out}\nGROUP BY {group_expr}\nORDER BY {alias} DESC\nLIMIT 50;{flaw}",
    ),
    rewrites=(
        "SELECT\n  {group_expr} AS {group_alias},\n  {metric_expr} AS {alias}\nFROM {table_a} {aa}\nLEFT JOIN {table_b} {ab} ON {join}\n{where}\nGROUP BY 1\nORDER BY 2 DESC;",
        "-- rewritten by analyst\nSELECT {group_expr} AS {group_alias}, {metric_expr} AS {alias}\nFROM {table_a} {aa}\nJOIN {table_b} {ab}\n  ON {join}\n{where}\nGROUP BY 1\nORDER BY 2 DESC;",
    ),
    fallback="-- Sorry, I couldn't generate a query for this request. Try naming the tables and the time range.",
    flaws={},
    overrides={"wrong_sql_join": {"join_out": "wrong_join"}, "hallucinated_schema": {"where_out": "where_fake"},
               "missing_required_info": {"where_out": "where_nodate"}},
    light=(("DESC;", "DESC NULLS LAST;"), ("GROUP BY 1", "GROUP BY 1, 2"), ("LIMIT 50", "LIMIT 100"),
           ("INNER JOIN", "JOIN")),
    light_append=("\n-- reviewed",),
    args=_sql_args,
)

# ----------------------------------------------------------------------------- code_review

# (title, file, bug description, finding)
_BUGS = (
    ("Add SSO login support", "src/auth/sso.py", "a missing null check on `user.email`",
     "`user.email` can be None for SSO users; this will raise AttributeError. Add a guard before calling `.lower()`."),
    ("Fix pagination in export API", "api/export.py", "an off-by-one error in the pagination loop",
     "The loop uses `range(1, total_pages)` and skips the last page. It should be `range(1, total_pages + 1)`."),
    ("Refactor config loader", "lib/config/loader.py", "an unclosed file handle",
     "The file opened here is never closed if `parse()` raises. Use a `with` block."),
    ("Speed up report generation", "reports/build.py", "a SQL query built with string formatting",
     "This builds SQL with an f-string from request input; use a parameterised query to avoid injection."),
    ("Cache user permissions", "core/cache.py", "a race condition on the shared cache dict",
     "`_cache` is mutated from several threads without a lock; wrap the update in `self._lock`."),
    ("Handle expired tokens", "auth/tokens.py", "a timezone-naive datetime comparison",
     "`datetime.now()` is naive but `expires_at` is aware; the comparison raises TypeError. Use `datetime.now(timezone.utc)`."),
    ("Add retry to payment client", "clients/payments.py", "a retried non-idempotent POST",
     "The retry decorator resends the payment POST on timeout and may charge twice. Add an idempotency key or don't retry."),
)
_NITS = ("Consider renaming `tmp` to something more descriptive.", "Nit: this import is unused.",
         "Maybe add a docstring here.", "Nit: line is longer than 100 characters.", "Consider extracting this into a helper.")
_FPS = (("a 'possible SQL injection' in a constant query", "Possible SQL injection here."),
        ("an 'unused variable' that is used two lines below", "Unused variable `result`."),
        ("a 'missing await' on a synchronous function", "Missing `await` on `load_config()`."),
        ("a 'mutable default argument' that is a tuple", "Mutable default argument `opts`."))
_REPOS = ("payments-service", "web-frontend", "data-pipeline", "auth-service", "mobile-app", "billing-api")


def _code_slots(rng: np.random.Generator, n: int) -> dict[str, Any]:
    b = rng.integers(len(_BUGS), size=n).tolist()
    f = rng.integers(len(_FPS), size=n).tolist()
    finding = [_BUGS[i][3] for i in b]
    verdict = pick(rng, n, ("Request changes.", "Requesting changes until the first point is fixed.",
                            "Please address the first comment before merging."))
    return columns(
        pr=rng.integers(1000, 9999, size=n).tolist(), repo=pick(rng, n, _REPOS), pr_title=[_BUGS[i][0] for i in b],
        file=[_BUGS[i][1] for i in b], bug=[_BUGS[i][2] for i in b], finding=finding, finding_out=finding,
        line=rng.integers(12, 480, size=n).tolist(), nit=pick(rng, n, _NITS), fp=[_FPS[i][0] for i in f],
        fp_text=[_FPS[i][1] for i in f], verdict_out=verdict, approve_finding=["Looks good, the logic is straightforward."] * n,
        approve_verdict=["Approve."] * n, vague_finding=["There might be an issue in this file."] * n,
        added=rng.integers(3, 400, size=n).tolist(), removed=rng.integers(0, 200, size=n).tolist(),
        files_changed=rng.integers(1, 12, size=n).tolist(), author=pick(rng, n, ("mkoch", "j-lee", "priya-dev", "tnguyen", "sofia.r")),
        missing=["where the bug is and how to fix it"] * n,
    )


def _code_args(tool: str, r: dict[str, Any], output: str | None) -> dict[str, Any]:
    if tool == "read_diff":
        return {"repo": r["repo"], "pr": r["pr"]}
    if tool == "run_linter":
        return {"paths": [r["file"]], "config": ".ruff.toml"}
    return {"path": r["file"].rsplit("/", 1)[0], "timeout_s": 600}


CODE_REVIEW = TextSpec(
    slots=_code_slots,
    inputs=(
        "Review PR #{pr} in {repo}: \"{pr_title}\" (+{added}/-{removed} lines, {files_changed} files). Focus on correctness.",
        "Please review https://git.example.com/{repo}/pull/{pr} — {pr_title}",
        "PR #{pr} by @{author}: {pr_title}. Main change in {file}.",
    ),
    outputs=(
        "**{file}:{line}**: {finding_out}\n\n{nit}{flaw}\n\nOverall: {verdict_out}",
        "Reviewed PR #{pr} ({repo}).\n\n- `{file}` line {line}: {finding_out}\n- {nit}{flaw}\n\nVerdict: {verdict_out}",
        "Thanks for the PR! A few notes:\n1. {file}#L{line} — {finding_out}\n2. {nit}{flaw}\n{verdict_out}",
    ),
    rewrites=(
        "{file}, line {line}: {finding}\nPlease also add a test that covers this case.\n\nRequesting changes.",
        "Blocking: {finding}\n(see {file}:{line})\n\nOtherwise LGTM once that's fixed.",
    ),
    fallback="Automated review is unavailable for this PR right now. Please request a review from a teammate.",
    flaws={
        "false_positive_finding": ("\n\nAlso: {fp_text} Please fix before merging.", "\n- {fp_text} (blocking)"),
        "tone_too_casual": ("\n\nHonestly this whole function is a mess lol 🙈", "\n\nwho wrote this?? 😂"),
    },
    overrides={"missed_bug": {"finding_out": "approve_finding", "verdict_out": "approve_verdict"},
               "missing_required_info": {"finding_out": "vague_finding"}},
    light=(("Overall:", "Summary:"), ("Consider", "Please consider"), ("Thanks for the PR!", "Thanks for the PR."),
           ("Verdict:", "Decision:"), ("Nit:", "Minor:")),
    light_append=("\n\n(also: please squash the commits before merging)",),
    args=_code_args,
)

# ----------------------------------------------------------------------------- translation_de

# (English noun phrase at sentence start, glossary noun, correct German, wrong German)
_TERMS = (
    ("Your account", "account", "Ihr Kundenkonto", "Ihr Account"),
    ("Your invoice", "invoice", "Ihre Rechnung", "Ihre Faktura"),
    ("Your subscription", "subscription", "Ihr Abonnement", "Ihre Subskription"),
    ("Your order", "order", "Ihre Bestellung", "Ihre Order"),
    ("Your refund", "refund", "Ihre Rückerstattung", "Ihr Refund"),
    ("Your shipping address", "shipping address", "Ihre Lieferadresse", "Ihre Versandanschrift"),
    ("Your payment method", "payment method", "Ihre Zahlungsart", "Ihre Bezahlmethode"),
    ("Your password", "password", "Ihr Passwort", "Ihr Kennwort"),
)
# (English, German, alternative German) with {t} for the term and {d} for a number of days
_S1 = (
    ("{t} has been updated.", "{t} wurde aktualisiert.", "{t} ist jetzt auf dem neuesten Stand."),
    ("{t} will be reviewed within two business days.", "{t} wird innerhalb von zwei Werktagen geprüft.",
     "{t} wird binnen zwei Werktagen geprüft."),
    ("{t} is now active.", "{t} ist jetzt aktiv.", "{t} ist ab sofort aktiv."),
    ("{t} could not be changed.", "{t} konnte nicht geändert werden.", "{t} ließ sich nicht ändern."),
    ("{t} expires in {d} days.", "{t} läuft in {d} Tagen ab.", "{t} endet in {d} Tagen."),
)
_S2 = (
    ("If you did not make this change, please contact our support team.",
     "Falls Sie diese Änderung nicht vorgenommen haben, wenden Sie sich bitte an unser Support-Team.",
     "Wenn Sie diese Änderung nicht selbst vorgenommen haben, kontaktieren Sie bitte unser Support-Team.",
     "Falls du das nicht warst, melde dich einfach bei unserem Support!"),
    ("No further action is needed.", "Es sind keine weiteren Schritte erforderlich.", "Sie müssen nichts weiter tun.",
     "Du musst nichts weiter tun."),
    ("Thank you for your patience.", "Vielen Dank für Ihre Geduld.", "Danke für Ihre Geduld.", "Danke für deine Geduld! 😊"),
    ("You can manage it at any time in the app.", "Sie können dies jederzeit in der App verwalten.",
     "In der App können Sie dies jederzeit anpassen.", "Du kannst das jederzeit in der App ändern."),
    ("Please contact us if you have any questions.", "Bei Fragen wenden Sie sich gerne an uns.",
     "Wenn Sie Fragen haben, melden Sie sich bitte bei uns.", "Schreib uns einfach, wenn du Fragen hast!"),
)


def _translation_slots(rng: np.random.Generator, n: int) -> dict[str, Any]:
    t = rng.integers(len(_TERMS), size=n).tolist()
    a = rng.integers(len(_S1), size=n).tolist()
    b = rng.integers(len(_S2), size=n).tolist()
    d = rng.integers(3, 31, size=n).tolist()
    nm = names(rng, n).tolist()
    greet = rng.random(n) < 0.4
    cols: dict[str, list[Any]] = {c: [] for c in ("s1_en", "s2_en", "s1_out", "s1_wrong", "s1_alt", "s2_out", "s2_du",
                                                  "s2_alt", "term", "wrong_term", "term_en", "greet_en", "greet_de")}
    for i in range(n):
        en, noun, de, wrong = _TERMS[t[i]]
        s1, s2 = _S1[a[i]], _S2[b[i]]
        g = bool(greet[i])
        vals = (s1[0].format(t=en, d=d[i]), s2[0], s1[1].format(t=de, d=d[i]), s1[1].format(t=wrong, d=d[i]),
                s1[2].format(t=de, d=d[i]), " " + s2[1], " " + s2[3], s2[2], de, wrong, noun,
                f"Hi {nm[i]}, " if g else "", f"Hallo {nm[i]}, " if g else "")
        for col, v in zip(cols, vals):
            cols[col].append(v)
    # The English sentence starts lower-case after a greeting.
    cols["s1_en_g"] = [s if not g else s[0].lower() + s[1:] for s, g in zip(cols["s1_en"], cols["greet_en"])]
    cols["market"] = pick(rng, n, ("Germany", "Austria", "Switzerland")).tolist()
    cols["missing"] = ["the second sentence"] * n
    cols["no_s2"] = [""] * n
    return cols


def _translation_args(tool: str, r: dict[str, Any], output: str | None) -> dict[str, Any]:
    return {"term": r["term_en"], "source_lang": "en", "target_lang": "de", "glossary": "customer-comms-2025"}


TRANSLATION_DE = TextSpec(
    slots=_translation_slots,
    inputs=(
        "Translate to German (formal, Sie):\n{greet_en}{s1_en_g} {s2_en}",
        "DE please: \"{greet_en}{s1_en_g} {s2_en}\"",
        "Please translate this notification into German for the {market} market:\n\n{greet_en}{s1_en_g} {s2_en}",
    ),
    outputs=("{greet_de}{s1_out}{s2_out}{flaw}", "„{greet_de}{s1_out}{s2_out}“{flaw}"),
    rewrites=("{greet_de}{s1_alt} {s2_alt}",),
    fallback="[Übersetzung derzeit nicht verfügbar – bitte manuell übersetzen]",
    flaws={},
    overrides={"wrong_terminology": {"s1_out": "s1_wrong"}, "tone_too_casual": {"s2_out": "s2_du"},
               "missing_required_info": {"s2_out": "no_s2"}},
    light=(("Falls Sie", "Wenn Sie"), ("Vielen Dank", "Herzlichen Dank"), ("wenden Sie sich bitte an", "kontaktieren Sie bitte"),
           ("erforderlich", "nötig"), ("Hallo ", "Guten Tag "), ("jetzt", "nun"), ("geprüft", "überprüft")),
    light_append=(" Mit freundlichen Grüßen",),
    args=_translation_args,
)

# ----------------------------------------------------------------------------- contract_summary

_DOC_TYPES = ("master services agreement", "NDA", "software licence agreement", "data processing agreement",
              "supply agreement", "office lease")
_PARTIES_A = ("Northwind GmbH", "Acme Corp", "Globex Ltd")
_PARTIES_B = ("Initech", "Umbrella Logistics", "Stark Retail", "Wayne Components", "Hooli EU", "Vandelay Imports",
              "Soylent Foods", "Cyberdyne Systems")
_CLAUSES = (("l_notice", "termination notice period"), ("l_renewal", "auto-renewal clause"), ("l_liability", "liability cap"))
_CONTRACT_CLAIMS = ("a right to terminate immediately without notice", "a most-favoured-customer pricing clause",
                    "fixed prices for the full term with no indexation", "a 99.99% uptime guarantee with service credits",
                    "an exclusivity clause for the DACH region")


def _contract_slots(rng: np.random.Generator, n: int) -> dict[str, Any]:
    term = pick(rng, n, ("12 months", "24 months", "36 months")).tolist()
    start = [f"{d} {m} 202{y}" for d, m, y in zip(rng.integers(1, 29, size=n).tolist(),
                                                pick(rng, n, ("January", "March", "April", "July", "October")).tolist(),
                                                rng.integers(5, 7, size=n).tolist())]
    fee = [f"${x:,}" for x in (rng.integers(8, 400, size=n) * 250).tolist()]
    period = pick(rng, n, ("month", "quarter", "year")).tolist()
    net = pick(rng, n, (15, 30, 45, 60)).tolist()
    notice = pick(rng, n, ("30 days'", "60 days'", "90 days'", "six months'")).tolist()
    renewal = pick(rng, n, ("renews automatically for successive 12-month terms unless cancelled",
                            "does not renew automatically")).tolist()
    cap = pick(rng, n, ("12 months of fees", "$250,000", "$1,000,000", "the fees paid in the prior year")).tolist()
    law = pick(rng, n, ("the laws of England and Wales", "New York law", "German law", "Swiss law")).tolist()
    omit = rng.integers(len(_CLAUSES), size=n).tolist()
    doc = pick(rng, n, _DOC_TYPES).tolist()
    return columns(
        doc_type=doc, doc_type_cap=[d[0].upper() + d[1:] for d in doc], party_a=pick(rng, n, _PARTIES_A),
        party_b=pick(rng, n, _PARTIES_B), pages=rng.integers(4, 61, size=n).tolist(), doc_id=digits(rng, n, 8, "DOC-"),
        term_len=term, start_date=start, fee=fee, period=period, net=net, notice=notice, renewal=renewal, cap=cap, law=law,
        l_term=[f"\n- Term: {a} from {b}." for a, b in zip(term, start)],
        l_fees=[f"\n- Fees: {a} per {b}, payable within {c} days of invoice." for a, b, c in zip(fee, period, net)],
        l_notice=[f"\n- Termination: by either party with {a} written notice." for a in notice],
        l_renewal=[f"\n- Renewal: {a}." for a in renewal], l_liability=[f"\n- Liability: capped at {a}." for a in cap],
        l_law=[f"\n- Governing law: {a}." for a in law], vague_fees=["\n- Fees: as per the pricing schedule."] * n,
        omit_slot=[_CLAUSES[i][0] for i in omit], clause=[_CLAUSES[i][1] for i in omit],
        claim=pick(rng, n, _CONTRACT_CLAIMS), missing=["the fee amount and payment terms"] * n,
    )


def _contract_args(tool: str, r: dict[str, Any], output: str | None) -> dict[str, Any]:
    if tool == "fetch_document":
        return {"document_id": r["doc_id"], "format": "text"}
    return {"document_id": r["doc_id"], "clause_types": ["termination", "renewal", "liability"]}


CONTRACT_SUMMARY = TextSpec(
    slots=_contract_slots,
    inputs=(
        "Summarize the attached {doc_type} between {party_a} and {party_b} ({pages} pages). Focus on term, fees, termination and liability.",
        "Please give me the key terms of the {party_b} {doc_type} before tomorrow's call.",
        "Legal review request: summary of {doc_type} ({party_b}), {pages} pages, document {doc_id}.",
    ),
    outputs=(
        "Summary of the {doc_type} between {party_a} and {party_b} ({pages} pages):{l_term}{l_fees}{l_notice}{l_renewal}{l_liability}{l_law}{flaw}",
        "{doc_type_cap} — {party_a} / {party_b}\nKey points:{l_term}{l_fees}{l_notice}{l_renewal}{l_liability}{flaw}",
    ),
    rewrites=(
        "{party_a} / {party_b} {doc_type}: {term_len} term from {start_date}; fees {fee} per {period} (net {net}); {notice} notice to terminate; {renewal}; liability capped at {cap}; governed by {law}.",
        "Key terms ({party_b}, {doc_type}):\n* Term {term_len}, starts {start_date}\n* {fee}/{period}, net {net}\n* Termination: {notice} notice\n* Renewal: {renewal}\n* Liability cap: {cap}\n* Law: {law}",
    ),
    fallback="Summary unavailable: the document could not be processed.",
    flaws={"hallucinated_policy": ("\n- Also includes {claim}.", "\n- Note: the agreement grants {claim}.")},
    overrides={"omitted_key_clause": {BLANK_SLOT: "omit_slot"}, "missing_required_info": {"l_fees": "vague_fees"}},
    light=(("Summary of the", "Summary of this"), ("payable within", "due within"), ("by either party with", "by either party on"),
           ("Key points:", "Key terms:"), ("capped at", "limited to")),
    light_append=("\n- Note: check the annex for exceptions.",),
    args=_contract_args,
)

# ----------------------------------------------------------------------------- product_copy

# (brand term, wrong spelling, item, features, key spec sentence, key spec, sku prefix)
_PRODUCT_LINES = (
    ("AeroFlex™", "Aeroflex", "running shoe", "a breathable knit upper, a recycled foam midsole and a grippy outsole",
     "At just 220 g, it's one of our lightest shoes.", "the 220 g weight", "RUN"),
    ("HydraPure™", "Hydra Pure", "filter bottle", "a 3-stage filter, a leak-proof lid and a BPA-free body",
     "Each filter cleans up to 300 litres of water.", "the 300-litre filter life", "HYD"),
    ("QuietCore™", "Quiet-Core", "noise-cancelling headphones", "adaptive noise cancelling, memory-foam ear cushions and USB-C charging",
     "The battery lasts up to 40 hours.", "the 40-hour battery life", "AUD"),
    ("EverBright™", "Everbright", "desk lamp", "adjustable colour temperature, a touch dimmer and a wireless charging base",
     "It draws only 9 W at full brightness.", "the 9 W power draw", "LMP"),
    ("ThermoLock™", "Thermo Lock", "travel mug", "double-wall vacuum insulation, a one-hand lid and a dishwasher-safe body",
     "It keeps drinks hot for 12 hours.", "the 12-hour heat retention", "MUG"),
)
_BENEFITS = ("Perfect for everyday use.", "Designed to last for years.", "Your new favourite companion.",
             "Made for people on the move.")


def _product_slots(rng: np.random.Generator, n: int) -> dict[str, Any]:
    k = rng.integers(len(_PRODUCT_LINES), size=n).tolist()
    sku = rng.integers(1000, 9999, size=n).tolist()
    spec = [_PRODUCT_LINES[i][4] for i in k]
    term = [_PRODUCT_LINES[i][0] for i in k]
    item = [_PRODUCT_LINES[i][2] for i in k]
    return columns(
        term=term, term_out=term, wrong_term=[_PRODUCT_LINES[i][1] for i in k], item=item,
        item_cap=[s[0].upper() + s[1:] for s in item], features=[_PRODUCT_LINES[i][3] for i in k], spec=spec,
        spec_out=[" " + s for s in spec], no_spec=[""] * n, missing=[_PRODUCT_LINES[i][5] for i in k],
        sku=[f"{_PRODUCT_LINES[i][6]}-{s}" for i, s in zip(k, sku)], benefit=pick(rng, n, _BENEFITS),
        tone=pick(rng, n, ("premium", "friendly", "sporty", "minimal")),
        audience=pick(rng, n, ("commuters", "students", "runners", "home-office workers", "travellers")),
    )


def _product_args(tool: str, r: dict[str, Any], output: str | None) -> dict[str, Any]:
    if tool == "fetch_product_spec":
        return {"sku": r["sku"], "locale": "en-US"}
    return {"terms": [r["term"]], "locale": "en-US"}


PRODUCT_COPY = TextSpec(
    slots=_product_slots,
    inputs=(
        "Write a product description for the {term} {item}. Key features: {features}. Tone: {tone}. Max 60 words.",
        "PDP copy needed: {term} {item} ({features}). Audience: {audience}.",
        "New listing {sku}: {term} {item}. Please draft 2-3 sentences for {audience}.",
    ),
    outputs=(
        "Meet the {term_out} {item}: {features}.{spec_out} {benefit}{flaw}",
        "{term_out} {item_cap}. Built with {features}.{spec_out}{flaw} {benefit}",
    ),
    rewrites=("The {term} {item} combines {features}. {spec} {benefit}",
              "Introducing the {term} {item} for {audience}: {features}. {spec}"),
    fallback="Description coming soon.",
    flaws={"tone_too_casual": (" Seriously, it slaps. 🔥", " Get it before your friends do, lol.", " Total game changer!!!")},
    overrides={"wrong_terminology": {"term_out": "wrong_term"}, "missing_required_info": {"spec_out": "no_spec"}},
    light=(("Meet the", "Introducing the"), ("Perfect", "Ideal"), ("Designed", "Built"), ("everyday", "daily"),
           ("Built with", "Made with")),
    light_append=(" Available in three colours.",),
    args=_product_args,
)
