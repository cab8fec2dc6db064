"""The one resource: where flywheel reads and writes, resolved from the environment at run time."""

from __future__ import annotations

from typing import Optional

import dagster as dg

from flywheel.config import Settings


class FlywheelResource(dg.ConfigurableResource):
    """Paths of the landing folder, the store and the analysts' database.

    Each field left unset falls back to its environment variable (FLYWHEEL_LANDING, FLYWHEEL_STORE,
    FLYWHEEL_DB), then to the laptop default under ./data; see flywheel.config.
    """

    landing: Optional[str] = None
    store: Optional[str] = None
    db: Optional[str] = None

    def settings(self) -> Settings:
        """The resolved settings for this run."""
        return Settings.from_env(landing=self.landing, store=self.store, db=self.db)
