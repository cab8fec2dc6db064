"""The sources file: where flywheel finds the contract's fields in the data a team already keeps.

`load_sources` reads a sources file (YAML), merges it over the default shipped beside this module
(`flywheel/sources/sources.yaml`: a mapping merges key by key, a list replaces the whole list) and
validates the result with pydantic, so that a bad file fails at once with every problem named by
its place in the file (`SourcesError`). `sources_from_env` loads the file named by
FLYWHEEL_SOURCES (`Settings.sources`), or the default alone. Today the file has one section,
`otlp`: which spans are AI events and tool calls, and for scenario, model, prompt version,
confidence and autonomy level an ordered list of candidates (a span attribute, a resource
attribute, the span name, a stated default). docs/otlp.md documents the keys.
"""

from __future__ import annotations

import functools
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from flywheel.contracts import AUTONOMY_LEVELS

DEFAULT_NAME = "sources.yaml"
ENV_VAR = "FLYWHEEL_SOURCES"

# The event fields a sources file may map, in contract order.
MAPPED_FIELDS: tuple[str, ...] = ("scenario", "model", "prompt_version", "confidence", "autonomy_level")


class SourcesError(Exception):
    """A sources file that cannot be used; the message names the file and every problem in it.

    Not a ValueError on purpose: the landing readers take a ValueError from the OTLP parser to
    mean "this landing file is bad", and a bad configuration must not quarantine good files.
    """


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Candidate(_Strict):
    """One place a field's value may come from: exactly one of the four keys is set."""

    attribute: str | None = None
    resource: str | None = None
    span: Literal["name"] | None = None
    default: str | float | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> "Candidate":
        given = [k for k in ("attribute", "resource", "span", "default") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("a candidate has exactly one of attribute, resource, span, default "
                             f"(got {', '.join(given) or 'none'})")
        for key in ("attribute", "resource"):
            value = getattr(self, key)
            if value is not None and not value.strip():
                raise ValueError(f"{key} must name an attribute, not be empty")
        return self

    @property
    def kind(self) -> str:
        """attribute, resource, span or default."""
        return next(k for k in ("attribute", "resource", "span", "default") if getattr(self, k) is not None)


def _defaults_of(candidates: list[Candidate]) -> list[Any]:
    return [c.default for c in candidates if c.default is not None]


class OtlpFields(_Strict):
    """Per mapped field, its candidates in order (first with a value wins)."""

    scenario: list[Candidate]
    model: list[Candidate]
    prompt_version: list[Candidate]
    confidence: list[Candidate]
    autonomy_level: list[Candidate]

    @field_validator("scenario", "model", "prompt_version")
    @classmethod
    def _text_default(cls, v: list[Candidate]) -> list[Candidate]:
        for d in _defaults_of(v):
            if not isinstance(d, str) or not d.strip():
                raise ValueError(f"the default must be a non-empty string, got {d!r}")
        return v

    @field_validator("confidence")
    @classmethod
    def _confidence_default(cls, v: list[Candidate]) -> list[Candidate]:
        for d in _defaults_of(v):
            if isinstance(d, str) or not 0.0 <= d <= 1.0:
                raise ValueError(f"the default must be a number in [0, 1], got {d!r}")
        return v

    @field_validator("autonomy_level")
    @classmethod
    def _level_default(cls, v: list[Candidate]) -> list[Candidate]:
        for d in _defaults_of(v):
            if d not in AUTONOMY_LEVELS:
                raise ValueError(f"the default must be one of {', '.join(AUTONOMY_LEVELS)}, got {d!r}")
        return v


def _check_matchers(v: dict[str, list[str]]) -> dict[str, list[str]]:
    for key, values in v.items():
        if not key.strip():
            raise ValueError("an attribute name is empty")
        if not values:
            raise ValueError(f"{key}: list at least one value")
    return v


class OtlpSource(_Strict):
    """The `otlp` section: which spans count, and where the mapped fields come from."""

    event_spans: dict[str, list[str]]
    tool_spans: dict[str, list[str]]
    fields: OtlpFields

    @field_validator("event_spans", "tool_spans")
    @classmethod
    def _matchers(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        return _check_matchers(v)

    def matches(self, which: Literal["event_spans", "tool_spans"], attrs: dict[str, Any]) -> bool:
        """Whether span attributes `attrs` make the span an event (or a tool call)."""
        return any(attrs.get(key) in values for key, values in getattr(self, which).items())

    def candidates(self, field: str) -> list[Candidate]:
        """The candidates of a mapped field, in order."""
        return getattr(self.fields, field)


class Sources(_Strict):
    """A whole sources file, validated."""

    version: Literal[1]
    otlp: OtlpSource
    # Pulled sources (langfuse, ...): validated per source by flywheel.sources.verdicts.pull_config.
    pull: dict[str, Any] = {}


def default_path() -> Any:
    """The default sources file shipped in the package (an importlib.resources Traversable)."""
    return files("flywheel.sources") / DEFAULT_NAME


def load_sources(path: Path | None = None) -> Sources:
    """The sources in `path` merged over the shipped default, or the default alone when None.

    Raises SourcesError naming the file and every problem in it. Cached by the file's path, size
    and modification time, so a changed file is read again.
    """
    if path is None:
        return _load(None, 0, 0)
    try:
        stat = Path(path).stat()
    except FileNotFoundError:
        raise SourcesError(f"sources file {path} ({ENV_VAR}) does not exist") from None
    except OSError as exc:
        raise SourcesError(f"sources file {path} ({ENV_VAR}) cannot be read: {exc}") from None
    return _load(str(path), stat.st_size, stat.st_mtime_ns)


def sources_from_env() -> Sources:
    """The sources named by FLYWHEEL_SOURCES (through `Settings.from_env().sources`), else the default.

    A configuration the environment gets wrong is a SourcesError too, never a ValueError.
    """
    from flywheel.config import Settings

    try:
        settings = Settings.from_env()
    except ValueError as exc:
        raise SourcesError(f"the configuration is not valid: {exc}") from None
    return load_sources(settings.sources)


@functools.lru_cache(maxsize=8)
def _load(path: str | None, size: int, mtime_ns: int) -> Sources:
    default = _read_yaml(default_path().read_text(encoding="utf-8"), f"default sources file {DEFAULT_NAME}")
    where = f"sources file {path}" if path is not None else f"default sources file {DEFAULT_NAME}"
    doc = default
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise SourcesError(f"{where} cannot be read: {exc}") from None
        user = _read_yaml(text, where)
        doc = _merge(default, user)
    try:
        return Sources.model_validate(doc)
    except ValidationError as exc:
        raise SourcesError(f"{where} is not valid:\n{describe_errors(exc)}") from None


def _read_yaml(text: str, where: str) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SourcesError(f"{where} is not YAML: {exc}") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise SourcesError(f"{where} must be a mapping (version: 1, otlp: ...), not a {type(doc).__name__}")
    return doc


def _merge(base: Any, over: Any) -> Any:
    """`over` merged into `base`: mappings key by key, anything else replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for key, value in over.items():
            out[key] = _merge(base[key], value) if key in base else value
        return out
    return over


def describe_errors(exc: ValidationError) -> str:
    """One line per problem: its place in the file (otlp.fields.scenario[1]) and what is wrong."""
    lines = []
    for err in exc.errors():
        place = ""
        for part in err["loc"]:
            if isinstance(part, int):
                place += f"[{part}]"
            elif part in ("function-after", "str", "float", "literal['name']") or str(part).startswith("function-"):
                continue
            else:
                place += ("." if place else "") + str(part)
        message = err["msg"].removeprefix("Value error, ")
        lines.append(f"  {place or '(top level)'}: {message}")
    return "\n".join(lines)
