"""The autonomy policy: a versioned, validated policy file plus the code in this package.

The file (YAML or JSON; FLYWHEEL_POLICY, else the default `flywheel/policy/policy.yaml`, package
data read with importlib.resources, which `policy/policy.yaml` at the top of the repository links
to) holds the targets,
limits, windows and per-scenario overrides. `load_policy` fails with a `PolicyError` that names
the offending field (e.g. `promotion.accept_target: must be <= 1`), never with a traceback.
"""

from __future__ import annotations

import hashlib
import json
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from flywheel.contracts import AUTONOMY_LEVELS

Level = Literal["shadow", "assist", "gated", "autonomous"]
DEFAULT_POLICY: Traversable = files("flywheel") / "policy" / "policy.yaml"


class PolicyError(ValueError):
    """A policy file that cannot be used; the message names the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Windows(_Strict):
    current_days: int = Field(7, ge=1, le=90, description="Days in the current window (ending at the run's day).")
    baseline_days: int = Field(28, ge=1, le=365, description="Days in the baseline window, just before the current one.")


class Promotion(_Strict):
    min_reviewed: int = Field(200, ge=1, description="Reviewed events needed in the current window.")
    accept_target: float = Field(0.90, gt=0, le=1, description="Wilson lower bound of accepted-as-is must reach this.")
    severe_max: float = Field(0.05, ge=0, le=1, description="Wilson upper bound of the severe-failure rate must stay at or below this.")
    operational_max: float = Field(0.05, ge=0, le=1, description="Wilson upper bound of the operational-failure rate "
                                                                "(error, timeout, fallback) must stay at or below this.")
    consecutive_days: int = Field(7, ge=1, le=90, description="Days in a row every gate must hold.")
    gate_min_coverage: float = Field(0.2, ge=0, le=1, description="For gated: the confidence gate must let through at least this share.")


class Demotion(_Strict):
    accept_floor: float = Field(0.80, ge=0, le=1, description="Demote when the Wilson upper bound of accepted-as-is falls below this.")
    severe_limit: float = Field(0.10, ge=0, le=1, description="Demote when the Wilson lower bound of the severe-failure rate exceeds this.")
    operational_limit: float = Field(0.15, ge=0, le=1, description="Where the AI acts alone, demote when the Wilson lower "
                                                                 "bound of the operational-failure rate exceeds this.")
    min_reviewed: int = Field(50, ge=1, description="Reviewed events needed before a demotion on rates.")
    automatic: bool = Field(True, description="Fail safe: demotions take effect at once, without approval (recorded as such).")


class Drift(_Strict):
    fdr: float = Field(0.05, gt=0, lt=1, description="Benjamini-Hochberg false discovery rate across all tests of a night.")
    min_effect: float = Field(0.05, ge=0, le=1, description="Smallest change of a model's or version's rate that warns, in absolute terms.")
    min_sample: int = Field(50, ge=1, description="Events needed in each window to test, and trials in a monitor's reference.")
    arl_days: float = Field(1000.0, gt=10, description="Average run length to a false alarm of each sequential monitor, in days "
                                                        "(a tenth of it for a warning).")
    shifts: tuple[float, ...] = Field((0.03, 0.05, 0.10), min_length=1, description="Rate changes the sequential "
                                      "monitors are tuned to detect (one CUSUM each), in absolute terms.")
    min_reference_days: int = Field(3, ge=1, description="Days of history a sequential monitor needs as its reference "
                                                        "before it may warn or alert.")
    reference_z: float = Field(2.0, ge=0, description="Standard errors the monitors move the reference rate to the good "
                                                      "side: a short history errs towards quiet.")
    min_baseline_days: int = Field(7, ge=1, description="Days of baseline data before PSI, KS and ECE signals may warn.")
    psi_warn: float = Field(0.10, ge=0, description="Population stability index that warns.")
    ece_warn_increase: float = Field(0.10, ge=0, description="ECE rise (current - baseline) that warns.")
    volume_ratio_warn: float = Field(2.0, gt=1, description="Current/baseline daily volume ratio (or its inverse) that warns.")
    failure_min_events: int = Field(5, ge=1, description="Events a new or growing failure cluster needs in a scenario "
                                                          "on the day to warn (and on each night it counts as seen).")
    failure_fdr_q: float = Field(0.05, gt=0, lt=1, description="A failure cluster grows only when its share's exact test "
                                 "against the baseline has a Benjamini-Hochberg q-value (over every scenario and cluster "
                                 "of the night) at or below this.")
    failure_min_ratio: float = Field(2.0, gt=1, description="...and its share is at least this many times its baseline "
                                     "share: the smallest growth worth a warning, so large scenarios do not warn on small shifts.")
    failure_new_days: int = Field(1, ge=0, description="A failure cluster may be new on the nights up to this many days "
                                  "after its birth night.")
    failure_new_nights: int = Field(2, ge=1, description="Nights (its birth night included) a new failure cluster must be "
                                    "seen with failure_min_events events in the scenario: a one-night cluster never warns.")

    @model_validator(mode="after")
    def _shifts_in_range(self) -> "Drift":
        if any(not 0 < d < 1 for d in self.shifts):
            raise ValueError("drift.shifts must be between 0 and 1")
        if self.failure_new_nights > self.failure_new_days + 1:
            raise ValueError("drift.failure_new_nights must be at most failure_new_days + 1 (else nothing is ever new)")
        return self


class Audit(_Strict):
    detect_increase: float = Field(0.05, gt=0, lt=1, description="Rise of the severe-failure rate to detect.")
    within_days: int = Field(7, ge=1, description="...within this many days.")
    power: float = Field(0.8, gt=0, lt=1)
    alpha: float = Field(0.05, gt=0, lt=1)
    min_share: float = Field(0.01, ge=0, le=1, description="Never audit less than this share.")


class Versions(_Strict):
    min_reviewed: int = Field(100, ge=1, description="Reviewed events each version needs before comparing.")
    alpha: float = Field(0.05, gt=0, lt=1)
    min_effect: float = Field(0.05, ge=0, le=1)


class Gate(_Strict):
    target: float = Field(0.95, gt=0, lt=1, description="Accepted-as-is rate the events at or above a confidence gate must have.")
    delta: float = Field(0.05, gt=0, lt=0.5, description="Allowed probability that a recommended gate's true accepted-as-is "
                                                          "rate is below target (fixed-sequence exact tests).")


class Tools(_Strict):
    min_calls: int = Field(50, ge=1)
    disable_error_rate: float = Field(0.30, ge=0, le=1, description="Disable a tool whose error rate's lower bound exceeds this.")
    approval_error_rate: float = Field(0.10, ge=0, le=1, description="Require approval above this error-rate lower bound.")
    approval_denial_rate: float = Field(0.20, ge=0, le=1, description="Require approval above this denial-rate lower bound.")
    approval_severe_rate: float = Field(0.15, ge=0, le=1, description="Require approval when events using the tool fail severely this often (lower bound).")


class ScenarioOverride(_Strict):
    max_level: Level | None = Field(None, description="Never recommend above this level; no data overrides it.")
    min_level: Level | None = Field(None, description="Never recommend below this level.")
    accept_target: float | None = Field(None, gt=0, le=1)


class Policy(_Strict):
    """The whole policy file."""

    version: str = Field(min_length=1, description="Recorded with every decision.")
    windows: Windows = Windows()
    promotion: Promotion = Promotion()
    demotion: Demotion = Demotion()
    drift: Drift = Drift()
    audit: Audit = Audit()
    versions: Versions = Versions()
    gate: Gate = Gate()
    tools: Tools = Tools()
    scenarios: dict[str, ScenarioOverride] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _hysteresis(self) -> "Policy":
        if self.demotion.accept_floor >= self.promotion.accept_target:
            raise ValueError("demotion.accept_floor must be below promotion.accept_target (hysteresis)")
        if self.demotion.severe_limit <= self.promotion.severe_max:
            raise ValueError("demotion.severe_limit must be above promotion.severe_max (hysteresis)")
        if self.demotion.operational_limit <= self.promotion.operational_max:
            raise ValueError("demotion.operational_limit must be above promotion.operational_max (hysteresis)")
        for name, o in self.scenarios.items():
            if o.min_level and o.max_level and AUTONOMY_LEVELS.index(o.min_level) > AUTONOMY_LEVELS.index(o.max_level):
                raise ValueError(f"scenarios.{name}: min_level is above max_level")
        return self

    def for_scenario(self, scenario: str) -> ScenarioOverride:
        """The overrides of `scenario` (empty when none)."""
        return self.scenarios.get(scenario, ScenarioOverride())

    def digest(self) -> str:
        """A short digest of the effective policy, recorded with decisions next to `version`."""
        return hashlib.sha256(json.dumps(self.model_dump(), sort_keys=True).encode()).hexdigest()[:12]


def load_policy(path: Path | None = None) -> Policy:
    """Read and validate the policy file at `path` (default: the package's flywheel/policy/policy.yaml)."""
    path: Path | Traversable = (path if hasattr(path, "read_text") else Path(path)) if path else DEFAULT_POLICY
    try:
        text = path.read_text()
    except OSError as exc:
        raise PolicyError(f"cannot read policy file {path}: {exc.strerror}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise PolicyError(f"policy file {path} is not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}") from None
    if not isinstance(data, dict):
        raise PolicyError(f"policy file {path} must hold a mapping of settings")
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "(top level)"
            problems.append(f"{where}: {err['msg']}")
        raise PolicyError(f"policy file {path} is invalid: " + "; ".join(problems)) from None
