"""flywheel: turn AI audit logs and human interventions into the evidence that decides how far an
AI may act on its own. This package is the domain library (contracts, ingestion, storage, and the
analysts' catalog); it never imports Dagster. The Dagster layer lives in `assets/`."""

__version__ = "0.1.0"
