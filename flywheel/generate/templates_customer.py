"""Text specs of the customer-facing scenarios: refund_request, order_status, invoice_dispute,
kb_answer and ticket_triage.

Each spec samples its slots as columns (vectorised), and lists input, draft, rewrite and fallback
templates; a failure mode shows in the draft through a flaw snippet or a slot override (the draft
quotes `wrong_amount`, `stale_status`, `wrong_queue` ...), and the reviewer comments (in
`feedback.py`) reuse the same slots.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from flywheel.generate.texts import (
    AGENTS,
    TextSpec,
    addresses,
    cards,
    columns,
    digits,
    emails,
    full_names,
    money,
    names,
    pick,
)

# ----------------------------------------------------------------------------- refund_request

_PRODUCTS = ("wireless headphones", "espresso machine", "pair of running shoes", "standing desk", "phone case",
             "air fryer", "winter jacket", "mechanical keyboard", "yoga mat", "smartwatch", "blender", "backpack",
             "desk lamp", "bluetooth speaker", "electric kettle", "robot vacuum")
_REASONS = (("damaged", "damaged"), ("broken", "damaged"), ("two weeks late", "late_delivery"),
            ("in the wrong size", "wrong_item"), ("incomplete", "missing_parts"), ("in the wrong colour", "wrong_item"),
            ("scratched", "damaged"), ("defective", "defective"))
_REFUND_CLAIMS = ("our 120-day no-questions-asked return policy", "a $25 loyalty credit that is added automatically",
                  "free express replacement within 24 hours", "our lifetime satisfaction guarantee",
                  "double refund for late deliveries")


def _refund_slots(rng: np.random.Generator, n: int) -> dict[str, Any]:
    amount = np.round(rng.uniform(9.0, 450.0, size=n), 2)
    factor = pick(rng, n, (0.5, 0.8, 1.25, 1.5, 2.0)).astype(float)
    reason = rng.integers(len(_REASONS), size=n)
    amt = money(amount)
    return columns(
        name=names(rng, n), order_id=digits(rng, n, 7, "#A"), product=pick(rng, n, _PRODUCTS),
        reason=[_REASONS[i][0] for i in reason.tolist()], reason_code=[_REASONS[i][1] for i in reason.tolist()],
        days_ago=rng.integers(2, 22, size=n).tolist(), amount=amt, amount_out=amt, amount_value=amount.tolist(),
        wrong_amount=money(np.round(amount * factor, 2)), vague_amount=["the eligible amount"] * n,
        claim=pick(rng, n, _REFUND_CLAIMS), card=cards(rng, n), card_exp=[f"{m:02d}/{y}" for m, y in zip(rng.integers(1, 13, size=n).tolist(), rng.integers(26, 31, size=n).tolist())],
        address=addresses(rng, n), pii=["the customer's full card number"] * n,
        missing=["the exact refund amount"] * n, agent=pick(rng, n, AGENTS),
    )


def _refund_args(tool: str, r: dict[str, Any], output: str | None) -> dict[str, Any]:
    if tool == "lookup_order":
        return {"order_id": r["order_id"]}
    if tool == "check_refund_policy":
        return {"order_id": r["order_id"], "reason": r["reason_code"], "days_since_delivery": r["days_ago"]}
    return {"order_id": r["order_id"], "amount": r["amount_value"], "currency": "USD", "method": "original_payment"}


REFUND = TextSpec(
    slots=_refund_slots,
    inputs=(
        "Hi, I ordered a {product} (order {order_id}) {days_ago} days ago and it arrived {reason}. I'd like a refund please.",
        "Order {order_id}: the {product} came {reason}. Can I get my money back? I paid {amount} for it.",
        "hello i want to return the {product} from order {order_id}, it was {reason}. how do i get a refund??",
        "This is the second time I'm writing about order {order_id}. The {product} arrived {reason}. Please refund {amount} to my card.",
        "Hi there,\nmy {product} ({order_id}) was {reason} when it got here. What are my options? A refund would be best.\nThanks, {name}",
        "Refund request - order {order_id} - {product} {reason}. Charged {amount}.",
    ),
    outputs=(
        "Hi {name},\n\nI'm sorry to hear your {product} arrived {reason}. I've checked order {order_id} and issued a refund of {amount_out} to your original payment method; you should see it within 5-7 business days.{flaw}\n\nBest regards,\nCustomer Support",
        "Hello {name}, thanks for reaching out about order {order_id}. Since the {product} was {reason}, you're eligible for a full refund of {amount_out}, which has been processed today.{flaw} Let me know if there's anything else I can help with.",
        "Hi {name} — apologies for the trouble with your {product}. A refund of {amount_out} for order {order_id} is on its way and should reach your account within a week.{flaw} There's no need to send the item back.",
        "Dear {name},\nThank you for contacting us. We have approved a refund of {amount_out} for order {order_id} ({product}, {reason}).{flaw} The money will be back on your card in 5-7 business days.\nKind regards",
    ),
    rewrites=(
        "Dear {name},\n\nThank you for contacting us about order {order_id}. We're sorry the {product} arrived {reason}. We have refunded {amount} to your original payment method; please allow 5-7 business days for it to appear.\n\nKind regards,\n{agent}",
        "Hi {name}, I've reviewed order {order_id} and refunded {amount} for the {product}. Apologies again that it arrived {reason}; the refund should show up within 5-7 business days. — {agent}",
        "Hello {name},\nsorry about the {product}! A refund of {amount} for order {order_id} has been issued and will appear on your statement within a week. You don't need to return the item.\nBest,\n{agent}",
    ),
    fallback="Thanks for contacting us! We've received your request about order {order_id} and a member of our team will get back to you within 24 hours.",
    flaws={
        "hallucinated_policy": (" Under {claim}, you can also keep the item.", " As a bonus, {claim} now applies to your account.",
                                " Good news: {claim} covers this order as well."),
        "tone_too_casual": (" No worries at all, stuff happens lol!", " Haha, that's super annoying, sorry about that!!",
                            " All sorted, mate 😎 Cheers!"),
        "pii_exposure": (" For reference, the card on file is {card}.", " We have refunded the card {card} (exp. {card_exp}).",
                         " Card used: {card}, billing address {address}."),
    },
    overrides={"wrong_refund_amount": {"amount_out": "wrong_amount"}, "missing_required_info": {"amount_out": "vague_amount"}},
    light=(("Best regards", "Kind regards"), ("I'm sorry to hear", "We're sorry to hear"), ("Let me know if", "Please let us know if"),
           ("you should see it", "you will see it"), ("Thank you for contacting us.", "Thanks for getting in touch."),
           ("apologies for", "sorry for"), ("is on its way", "has been issued"), ("processed today", "processed"), ("Hi ", "Hello ")),
    light_append=(" Thanks for your patience.", "\n\nP.S. We've added a note to your account."),
    args=_refund_args,
)

# ----------------------------------------------------------------------------- order_status

_CARRIERS = ("DHL", "UPS", "FedEx", "DPD", "USPS", "GLS", "Royal Mail")
_SHIP_STATUS = ("in transit", "out for delivery", "at the local depot", "held at customs", "delayed due to weather",
                "with the courier")
_STALE_STATUS = ("awaiting pickup", "label created", "at the origin warehouse")
_ETAS = ("tomorrow", "on Monday", "by Tuesday evening", "on Wednesday", "on Thursday before 6 pm", "on Friday",
         "within 2-3 business days", "early next week")
_STALE_ETAS = ("last Friday", "two days ago", "yesterday", "by the 3rd")
_ORDER_CLAIMS = ("a free express upgrade on your next order", "a 20% delay voucher", "free shipping for a year",
                 "a full refund if it is more than one day late")


def _order_slots(rng: np.random.Generator, n: int) -> dict[str, Any]:
    status = pick(rng, n, _SHIP_STATUS)
    eta = pick(rng, n, _ETAS)
    pref = pick(rng, n, ("1Z", "JD", "CP", "TBA", "00"))
    track = digits(rng, n, 12)
    return columns(
        name=names(rng, n), order_id=digits(rng, n, 7, "#A"), carrier=pick(rng, n, _CARRIERS),
        tracking=[a + b for a, b in zip(pref.tolist(), track)], status_phrase=status, status_out=status,
        eta=eta, eta_out=eta, stale_status=pick(rng, n, _STALE_STATUS), stale_eta=pick(rng, n, _STALE_ETAS),
        vague_eta=["soon"] * n, days_ago=rng.integers(3, 19, size=n).tolist(), claim=pick(rng, n, _ORDER_CLAIMS),
        address=addresses(rng, n), other_email=emails(rng, n), other_name=full_names(rng, n),
        pii=["another customer's address and e-mail"] * n, missing=["the expected delivery date"] * n,
    )


def _order_args(tool: str, r: dict[str, Any], output: str | None) -> dict[str, Any]:
    if tool == "lookup_order":
        return {"order_id": r["order_id"], "fields": ["status", "shipment"]}
    return {"carrier": r["carrier"], "tracking_number": r["tracking"]}


ORDER_STATUS = TextSpec(
    slots=_order_slots,
    inputs=(
        "Where is my order {order_id}? It's been {days_ago} days.",
        "hi, any update on {order_id}?? tracking hasn't moved",
        "Can you tell me when order {order_id} will arrive? I need it {eta}.",
        "My package ({order_id}) has said '{status_phrase}' for ages. What's going on?",
        "Hello, I'm still waiting for order {order_id}. Could you check with {carrier}? Thanks, {name}",
    ),
    outputs=(
        "Hi {name}, your order {order_id} is {status_out} with {carrier} (tracking number {tracking}). Expected delivery: {eta_out}.{flaw}",
        "Hello {name}! Order {order_id} is currently {status_out}. You can follow it on the {carrier} website with tracking number {tracking}; it should arrive {eta_out}.{flaw}",
        "Thanks for checking in, {name}. {carrier} reports your parcel as {status_out}, and the current estimate is {eta_out}.{flaw} Tracking: {tracking}",
    ),
    rewrites=(
        "Hi {name}, I checked order {order_id}: it's {status_phrase} with {carrier}, tracking number {tracking}. The latest estimate is {eta}. Sorry for the wait!",
        "Hello {name}, thanks for your patience. Order {order_id} is {status_phrase}; {carrier} expects to deliver it {eta}. You can track it with {tracking}.",
    ),
    fallback="Thanks for your message! You can check the status of your order at any time under My Orders. If you need more help, reply to this message and an agent will get back to you.",
    flaws={
        "hallucinated_policy": (" Because of the delay, you'll also receive {claim}.", " As always, {claim} applies."),
        "tone_too_casual": (" Chill, it's on its way 😄", " lol couriers, right? 🙃", " Hang tight, buddy!!"),
        "pii_exposure": (" Delivery address on file: {address} ({other_name}).",
                         " It's travelling together with the parcel for {other_email} at {address}."),
    },
    overrides={"stale_tracking_info": {"status_out": "stale_status", "eta_out": "stale_eta"},
               "missing_required_info": {"eta_out": "vague_eta"}},
    light=(("Expected delivery:", "Estimated delivery:"), ("Thanks for checking in", "Thanks for reaching out"),
           ("should arrive", "is expected to arrive"), ("currently ", ""), ("Hello ", "Hi ")),
    light_append=(" Have a great day!", " Sorry for the wait."),
    args=_order_args,
)

# ----------------------------------------------------------------------------- invoice_dispute

_PLANS = (("Starter", 19.0), ("Team", 49.0), ("Business", 129.0), ("Enterprise", 499.0))
_INVOICE_CLAIMS = ("your next three months are free as compensation", "we'll waive all fees for the rest of the year",
                   "you're automatically upgraded to Enterprise at no cost", "late fees are never charged on disputed invoices")


def _invoice_slots(rng: np.random.Generator, n: int) -> dict[str, Any]:
    plan = rng.integers(len(_PLANS), size=n)
    seats = rng.integers(1, 25, size=n)
    expected = np.array([_PLANS[p][1] for p in plan.tolist()]) * seats
    over = np.round(expected * pick(rng, n, (0.5, 1.0, 0.25, 2.0)).astype(float) + rng.uniform(0, 30, size=n), 2)
    charged = expected + over
    factor = pick(rng, n, (0.5, 2.0, 1.3, 0.1)).astype(float)
    amt = money(over)
    return columns(
        name=names(rng, n), invoice_id=digits(rng, n, 6, "INV-2026-"), plan=[_PLANS[p][0] for p in plan.tolist()],
        expected=money(expected), charged=money(charged), amount=amt, amount_out=amt, amount_value=over.tolist(),
        wrong_amount=money(np.round(over * factor, 2)), vague_amount=["the difference"] * n,
        claim=pick(rng, n, _INVOICE_CLAIMS), missing=["the credit amount and when it applies"] * n, agent=pick(rng, n, AGENTS),
    )


def _invoice_args(tool: str, r: dict[str, Any], output: str | None) -> dict[str, Any]:
    if tool == "lookup_invoice":
        return {"invoice_id": r["invoice_id"]}
    return {"invoice_id": r["invoice_id"], "include_refunds": True}


INVOICE_DISPUTE = TextSpec(
    slots=_invoice_slots,
    inputs=(
        "Invoice {invoice_id} charges {charged}, but my {plan} plan is {expected} a month. Please correct it.",
        "We were billed twice on {invoice_id}. Total {charged} instead of {expected}.",
        "Hi, why is invoice {invoice_id} {charged}? We're on the {plan} plan and expected {expected}.",
        "Dispute: {invoice_id}. Amount charged {charged}; contract says {expected}. Please send a corrected invoice. — {name}",
    ),
    outputs=(
        "Hi {name}, thanks for flagging invoice {invoice_id}. You're right: your {plan} plan comes to {expected}, so we've issued a credit of {amount_out} that will be applied to your next invoice.{flaw}",
        "Hello {name},\nI've reviewed invoice {invoice_id}. The difference comes from a proration error after your plan change. A credit note for {amount_out} has been created.{flaw}\nBest regards",
        "Dear {name}, we're sorry for the billing error on {invoice_id}. We have refunded {amount_out} to your card on file.{flaw} You'll receive a corrected invoice by e-mail.",
    ),
    rewrites=(
        "Hi {name}, sorry about the error on invoice {invoice_id}. We've credited {amount} to your account; it will be deducted from your next invoice. — {agent}",
        "Dear {name},\nwe have corrected invoice {invoice_id}: a credit note of {amount} has been issued and you'll receive the updated invoice by e-mail.\nKind regards,\n{agent}",
    ),
    fallback="Thanks for reaching out about invoice {invoice_id}. Our billing team will review it and reply within two business days.",
    flaws={"hallucinated_policy": (" In addition, {claim}.", " Also, as a courtesy, {claim}.")},
    overrides={"wrong_refund_amount": {"amount_out": "wrong_amount"}, "missing_required_info": {"amount_out": "vague_amount"}},
    light=(("Hi ", "Hello "), ("thanks for flagging", "thank you for flagging"), ("Best regards", "Kind regards"),
           ("has been created", "has been issued"), ("we're sorry", "we apologise")),
    light_append=(" Sorry for the inconvenience.",),
    args=_invoice_args,
)

# ----------------------------------------------------------------------------- kb_answer

_KB = (
    ("How do I reset my password?", "Go to Settings → Security and click “Reset password”. We'll e-mail you a link that is valid for 30 minutes.",
     "Go to Settings → Security and click “Reset password”.", "KB-1042", "how long the reset link is valid"),
    ("Can I change my plan in the middle of a billing cycle?", "Yes. Upgrades apply immediately and are prorated; downgrades take effect at the start of the next billing cycle.",
     "Yes, you can change your plan at any time.", "KB-2210", "how proration and downgrades work"),
    ("How do I export my data?", "Open Account → Data export and choose CSV or JSON. Large exports are e-mailed to you when ready, usually within an hour.",
     "Open Account → Data export.", "KB-3307", "the export formats and the e-mail delivery"),
    ("Do you support single sign-on?", "Yes, SAML 2.0 SSO is available on the Business and Enterprise plans. An admin can enable it under Admin → Authentication.",
     "Yes, SSO is supported.", "KB-1188", "which plans include SSO and where to enable it"),
    ("How do I add a team member?", "Admins can invite people from Team → Invite. Each new member uses one seat on your plan.",
     "Use Team → Invite.", "KB-1530", "that each member uses a paid seat"),
    ("What is your refund policy?", "Annual plans can be refunded pro rata within 30 days of purchase; monthly plans are not refundable.",
     "Refunds depend on your plan.", "KB-0904", "the 30-day window and the monthly-plan exception"),
    ("Why was my payment declined?", "Most declines come from the card issuer. Check the card's expiry date and billing address, or add another payment method under Billing.",
     "Your bank declined the payment.", "KB-2675", "what the customer can do about it"),
    ("How do I turn on two-factor authentication?", "Go to Settings → Security → Two-factor authentication and scan the QR code with an authenticator app. Keep your backup codes somewhere safe.",
     "Enable it in Settings → Security.", "KB-1043", "the steps and the backup codes"),
    ("Can I use the API on the free plan?", "The API is available on all plans, but the free plan is limited to 1,000 requests per day.",
     "Yes, the API is available.", "KB-4120", "the rate limit on the free plan"),
    ("How long do you keep deleted files?", "Deleted files stay in the trash for 30 days and can be restored from there; after that they are permanently removed.",
     "Deleted files go to the trash.", "KB-3391", "the 30-day retention period"),
)
_KB_CLAIMS = ("all plans include a free 60-day trial extension", "refunds are available at any time, no questions asked",
              "admins can restore deleted data from the last 5 years", "the free plan includes unlimited API calls",
              "SSO is free on every plan", "we never charge for extra seats")


def _kb_slots(rng: np.random.Generator, n: int) -> dict[str, Any]:
    k = rng.integers(len(_KB), size=n).tolist()
    nm = names(rng, n).tolist()
    greet = rng.integers(3, size=n).tolist()
    greeting = ["" if g == 0 else (f"Hi {x}! " if g == 1 else "Thanks for asking! ") for g, x in zip(greet, nm)]
    q = [_KB[i][0] for i in k]
    answer = [_KB[i][1] for i in k]
    return columns(
        name=nm, q=q, q_lower=[s[0].lower() + s[1:] for s in q], answer=answer, answer_out=answer,
        short_answer=[_KB[i][2] for i in k], article=[_KB[i][3] for i in k], missing=[_KB[i][4] for i in k],
        greeting=greeting, claim=pick(rng, n, _KB_CLAIMS),
    )


def _kb_args(tool: str, r: dict[str, Any], output: str | None) -> dict[str, Any]:
    if tool == "search_kb":
        return {"query": r["q"], "top_k": 5}
    return {"article_id": r["article"]}


KB_ANSWER = TextSpec(
    slots=_kb_slots,
    inputs=("{q}", "quick question: {q_lower}", "Hi, {q} Thanks!", "{q} I looked in the help center but couldn't find it.",
            "Customer asks: \"{q}\" — what should I tell them?"),
    outputs=(
        "{greeting}{answer_out}{flaw}\n\nSource: {article}",
        "{answer_out}{flaw} (see {article})",
        "Hi {name}! {answer_out}{flaw}\n\nMore details: https://help.example.com/articles/{article}",
    ),
    rewrites=(
        "Hi {name}, {answer} You can find the full guide in {article}.",
        "{answer}\n\nHere's the article with screenshots: https://help.example.com/articles/{article}",
    ),
    fallback="I couldn't find an answer in the help center. I've passed your question to our support team.",
    flaws={
        "hallucinated_policy": (" Also, {claim}.", " Good to know: {claim}.", " (Note that {claim}.)"),
        "tone_too_casual": (" Easy peasy 😉", " lol, happens to everyone", " Boom, done! 🚀"),
    },
    overrides={"missing_required_info": {"answer_out": "short_answer"}},
    light=(("Go to", "Open"), ("Thanks for asking! ", ""), ("More details:", "Full article:"), ("Source:", "See:"),
           ("somewhere safe", "in a safe place")),
    light_append=(" Let me know if that helps!",),
    args=_kb_args,
)

# ----------------------------------------------------------------------------- ticket_triage

_QUEUES = ("Billing", "Tech Support", "Account & Access", "Logistics", "Sales", "Privacy & Legal")
_TICKETS = (
    ("I was charged twice for my subscription this month, please fix.", 0, "Customer reports a duplicate subscription charge", "P2"),
    ("Why is my invoice higher than last month? I didn't change my plan.", 0, "Customer questions an invoice increase", "P3"),
    ("Refund still not received after 10 days.", 0, "Refund not received after 10 days", "P2"),
    ("The app crashes every time I upload a photo larger than 10 MB.", 1, "App crash on large photo upload", "P2"),
    ("Export to CSV has been spinning for an hour.", 1, "CSV export hangs", "P3"),
    ("Getting error 502 when I open the dashboard. Whole team is blocked!", 1, "Dashboard returns 502; team blocked", "P1"),
    ("I can't log in, the password reset e-mail never arrives.", 2, "Password reset e-mail not delivered", "P2"),
    ("Please change the e-mail address on my account.", 2, "Change of account e-mail address", "P4"),
    ("My account was locked after two login attempts.", 2, "Account locked after failed logins", "P2"),
    ("Tracking says delivered but I never got the parcel.", 3, "Parcel marked delivered but not received", "P2"),
    ("The box arrived crushed and the item is broken.", 3, "Item damaged in transit", "P3"),
    ("Can I change the delivery address for my order?", 3, "Delivery address change request", "P3"),
    ("Do you offer volume discounts for 50+ seats?", 4, "Volume discount enquiry (50+ seats)", "P3"),
    ("We'd like a demo of the enterprise plan for our team.", 4, "Enterprise demo request", "P3"),
    ("Please delete all my personal data (GDPR request).", 5, "GDPR erasure request", "P1"),
    ("I want a copy of all the data you hold about me.", 5, "Data subject access request", "P2"),
)


def _triage_slots(rng: np.random.Generator, n: int) -> dict[str, Any]:
    t = rng.integers(len(_TICKETS), size=n).tolist()
    shift = rng.integers(1, len(_QUEUES), size=n).tolist()
    queue = [_QUEUES[_TICKETS[i][1]] for i in t]
    wrong = [_QUEUES[(_TICKETS[i][1] + s) % len(_QUEUES)] for i, s in zip(t, shift)]
    summary = [_TICKETS[i][2] for i in t]
    prio = [_TICKETS[i][3] for i in t]
    return columns(
        name=names(rng, n), ticket=[_TICKETS[i][0] for i in t], ticket_id=digits(rng, n, 6, "T-"),
        subject=pick(rng, n, ("Help", "Problem with my account", "URGENT", "Question", "Re: your e-mail", "(no subject)")),
        year=rng.integers(2015, 2026, size=n).tolist(), queue=queue, queue_out=queue, wrong_queue=wrong,
        summary=summary, summary_out=summary, vague_summary=["Customer needs help."] * n, prio=prio,
        missing=["a usable summary"] * n,
    )


def _triage_args(tool: str, r: dict[str, Any], output: str | None) -> dict[str, Any]:
    if tool == "search_kb":
        return {"query": r["summary"], "top_k": 3}
    if tool == "set_priority":
        return {"ticket_id": r["ticket_id"], "priority": r["prio"]}
    return {"ticket_id": r["ticket_id"], "queue": r["queue_out"]}


TICKET_TRIAGE = TextSpec(
    slots=_triage_slots,
    inputs=("Subject: {subject}\n\n{ticket}\n\n-- {name}", "{ticket}", "[{ticket_id}] {ticket} (customer since {year})"),
    outputs=(
        "queue: {queue_out}\npriority: {prio}\nsummary: {summary_out}{flaw}",
        "Routed to {queue_out} ({prio}). Summary: {summary_out}.{flaw}",
    ),
    rewrites=("queue: {queue}\npriority: {prio}\nsummary: {summary} (checked by agent)",
              "Routed to {queue} ({prio}). Summary: {summary}. Customer: {name}."),
    fallback="queue: General\npriority: P3\nsummary: (auto-triage unavailable)",
    flaws={},
    overrides={"misrouted_ticket": {"queue_out": "wrong_queue"}, "missing_required_info": {"summary_out": "vague_summary"}},
    light=(("priority: P3", "priority: P2"), ("priority: P2", "priority: P3"), ("priority: P4", "priority: P3"),
           ("(P3)", "(P2)"), ("(P2)", "(P1)"), ("Routed to", "Assigned to")),
    light_append=(" [tag: vip]",),
    args=_triage_args,
)
