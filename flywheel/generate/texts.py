"""Text generation: per-scenario template specs, and rendering them into inputs, drafts and human texts.

A `TextSpec` says how one scenario's texts are made: a slot sampler (vectorised, one column per
slot), input templates, draft (output) templates with a `{flaw}` slot, human rewrite templates, a
canned fallback reply, per-failure-mode flaw snippets and slot overrides (e.g. the draft quotes
`wrong_amount` instead of `amount`), light-edit substitutions and the tool-argument builder.
`render` turns n sampled rows into texts with cheap per-record `str.format_map`; the rows are
kept so the human side (rewrites, comments) can reuse the same slot values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Column = Sequence[Any] | np.ndarray  # a slot's values for n events: a list, or what `pick` draws
SlotSampler = Callable[[np.random.Generator, int], dict[str, Column]]
ArgsBuilder = Callable[[str, dict[str, Any], "str | None"], dict[str, Any]]

BLANK_SLOT = "*"  # override key: blank the slot whose name is held in the row's `src` slot

FIRST_NAMES: tuple[str, ...] = (
    "Anna", "Ben", "Chloé", "David", "Emma", "Fatima", "George", "Hannah", "Ivan", "Jürgen", "Kenji", "Laura",
    "Mateo", "Nadia", "Olu", "Priya", "Quinn", "Rosa", "Søren", "Tom", "Uma", "Víctor", "Wei", "Zoë",
    "Łukasz", "Anaïs", "José", "Mia", "Noah", "Sofia", "Liam", "Aisha", "Björn", "Carmen", "Dmitri", "Elif",
)
LAST_NAMES: tuple[str, ...] = ("Smith", "Müller", "García", "Kowalski", "Nguyen", "O'Brien", "Rossi", "Dubois",
                               "Tanaka", "Johansson", "Patel", "Novak", "Schmidt", "Brown", "Silva", "Yılmaz")
AGENTS: tuple[str, ...] = ("Maya, Customer Care", "Tom from Support", "Lena (Billing Team)", "Raj, Support Team",
                           "Sam — Customer Support", "Julia from the Help Desk", "Customer Care Team")


@dataclass(frozen=True)
class TextSpec:
    """How one scenario's texts are generated (see the module docstring)."""

    slots: SlotSampler
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    rewrites: tuple[str, ...]
    fallback: str
    flaws: Mapping[str, tuple[str, ...]]
    overrides: Mapping[str, Mapping[str, str]]
    light: tuple[tuple[str, str], ...]
    light_append: tuple[str, ...]
    args: ArgsBuilder


@dataclass
class Rendered:
    """The texts of n events of one scenario, and the slot rows they were made from."""

    rows: list[dict[str, Any]]
    inputs: list[str]
    outputs: list[str | None]


def pick(rng: np.random.Generator, n: int, values: Sequence[Any]) -> np.ndarray:
    """n values drawn uniformly (with replacement) from `values`, as an object array."""
    arr = np.empty(len(values), dtype=object)
    arr[:] = list(values)
    return arr[rng.integers(len(values), size=n)]


def money(values: np.ndarray) -> list[str]:
    """Amounts formatted as US dollars, e.g. $1,234.50."""
    return [f"${v:,.2f}" for v in values.tolist()]


def digits(rng: np.random.Generator, n: int, width: int, prefix: str = "") -> list[str]:
    """n random zero-padded numbers of `width` digits with a prefix."""
    nums = rng.integers(0, 10 ** width, size=n)
    return [f"{prefix}{x:0{width}d}" for x in nums.tolist()]


def names(rng: np.random.Generator, n: int) -> np.ndarray:
    """n customer first names."""
    return pick(rng, n, FIRST_NAMES)


def full_names(rng: np.random.Generator, n: int) -> list[str]:
    """n customer full names."""
    first, last = pick(rng, n, FIRST_NAMES), pick(rng, n, LAST_NAMES)
    return [f"{a} {b}" for a, b in zip(first.tolist(), last.tolist())]


def emails(rng: np.random.Generator, n: int) -> list[str]:
    """n plausible e-mail addresses of other customers."""
    first, last = pick(rng, n, ("j", "m", "a", "k", "s", "l", "t", "p")), pick(rng, n, LAST_NAMES)
    nums = rng.integers(1, 99, size=n)
    doms = pick(rng, n, ("gmail.com", "outlook.com", "yahoo.com", "web.de", "icloud.com"))
    return [f"{a}.{b.lower().replace(chr(39), '').replace('ü', 'ue').replace('ı', 'i')}{c}@{d}"
            for a, b, c, d in zip(first.tolist(), last.tolist(), nums.tolist(), doms.tolist())]


def cards(rng: np.random.Generator, n: int) -> list[str]:
    """n full card numbers, as a leaking draft would print them."""
    a = rng.integers(4000, 4999, size=n)
    b, c, d = (rng.integers(0, 10000, size=n) for _ in range(3))
    return [f"{w} {x:04d} {y:04d} {z:04d}" for w, x, y, z in zip(a.tolist(), b.tolist(), c.tolist(), d.tolist())]


def addresses(rng: np.random.Generator, n: int) -> list[str]:
    """n street addresses."""
    num = rng.integers(1, 240, size=n)
    street = pick(rng, n, ("Birch Lane", "Hauptstraße", "Elm Street", "Rue de la Paix", "Oak Avenue", "Via Roma",
                           "Kingsway", "Mill Road"))
    city = pick(rng, n, ("Leeds", "Berlin", "Austin", "Lyon", "Denver", "Milan", "Bristol", "Graz"))
    return [f"{a} {b}, {c}" for a, b, c in zip(num.tolist(), street.tolist(), city.tolist())]


def columns(**cols: Column) -> dict[str, Column]:
    """Slot columns as a dict (a small readability helper for slot samplers)."""
    return dict(cols)


def render(spec: TextSpec, rng: np.random.Generator, n: int, modes: Sequence[str | None],
           status: Sequence[str]) -> Rendered:
    """Render n events: sample slots, apply each flawed event's overrides and snippet, format.

    `modes` is the failure mode of each event's draft (None for a good draft); `status` its status
    (error/timeout events get no output, fallback events the canned reply).
    """
    cols = dict(spec.slots(rng, n))
    cols["flaw"] = [""] * n
    keys = list(cols)
    rows: list[dict[str, Any]] = [dict(zip(keys, vals)) for vals in zip(*(cols[k] for k in keys))]
    pick_in = rng.integers(len(spec.inputs), size=n).tolist()
    pick_out = rng.integers(len(spec.outputs), size=n).tolist()
    pick_flaw = rng.integers(0, 1 << 30, size=n).tolist()
    for i in [i for i, mode in enumerate(modes) if mode is not None]:
        mode, row = modes[i], rows[i]
        for slot, src in spec.overrides.get(mode, {}).items():
            if slot == BLANK_SLOT:
                row[row[src]] = ""
            else:
                row[slot] = row[src]
        snippets = spec.flaws.get(mode)
        if snippets:
            row["flaw"] = snippets[pick_flaw[i] % len(snippets)].format_map(row)
    ins, outs = spec.inputs, spec.outputs
    inputs = [ins[t].format_map(r) for t, r in zip(pick_in, rows)]
    outputs: list[str | None] = []
    for t, r, st in zip(pick_out, rows, status):
        if st == "ok":
            outputs.append(outs[t].format_map(r))
        elif st == "fallback":
            outputs.append(spec.fallback.format_map(r))
        else:
            outputs.append(None)
    return Rendered(rows, inputs, outputs)


def rewrite(spec: TextSpec, row: dict[str, Any], k: int) -> str:
    """A human's own version of the text (a heavy rewrite), from the same slots."""
    return spec.rewrites[k % len(spec.rewrites)].format_map(row)


def light_edit(spec: TextSpec, text: str, k: int) -> str:
    """A light edit of `text`: one word or phrase changed, or a short sentence added; never identical."""
    pairs = spec.light
    for j in range(len(pairs)):
        old, new = pairs[(k + j) % len(pairs)]
        if old in text:
            return text.replace(old, new, 1)
    return text + spec.light_append[k % len(spec.light_append)]
