"""The Dagster layer of flywheel: thin assets, checks, partitions, schedules, sensors and
resources over the `flywheel` library, gathered in one `Definitions` (assets.definitions)."""
