"""The one resource: where flywheel reads and writes, resolved from the environment at run time."""

from __future__ import annotations

import dagster as dg

from flywheel.config import Settings


class FlywheelResource(dg.ConfigurableResource):
    """Paths of the landing folder, the store, the analysts' database and the policy file.

    Each field left unset falls back to its environment variable (FLYWHEEL_LANDING, FLYWHEEL_STORE,
    FLYWHEEL_DB, FLYWHEEL_POLICY), then to the laptop default under ./data (for the policy, the one
    shipped in the package, flywheel/policy/policy.yaml); see flywheel.config. Every step of a run validates the policy before it starts, so a bad policy
    fails the run's first step, not the decisions step after the night's work.
    """

    landing: str | None = None
    store: str | None = None
    db: str | None = None
    policy: str | None = None

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        if context.dagster_run is None:  # a sensor's or a schedule's tick: nothing decides there
            return
        from flywheel.signals.decide import policy_for

        policy_for(self.settings())  # raises PolicyError naming the file and the field

    def settings(self) -> Settings:
        """The resolved settings for this run."""
        return Settings.from_env(landing=self.landing, store=self.store, db=self.db, policy=self.policy)
