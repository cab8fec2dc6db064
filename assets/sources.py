"""Pulled sources as Dagster assets: `sources/<name>` pulls a server into the landing folder.

One asset per pulled source whose section in the sources file names its server (`pull.phoenix.url`,
`pull.mlflow.tracking_uri`) or, for Langfuse's files, its folder (`pull.langfuse.folder`): the
shipped default names none, so a default install has no such asset
and never reaches for a server. Each asset runs `flywheel.sources.pull.pull` (the same as `flywheel
pull SOURCE`) and reports its reconciled counts; the files it lands are picked up by
`landing_sensor` like any other landing file. `pull_sources` (a job) materialises them all, every
15 minutes by `pull_schedule`. Credentials come from the environment only (docs/sources.md).
"""


from collections.abc import Callable
from typing import Any

import dagster as dg

from assets.resources import FlywheelResource
from flywheel.config import Settings
from flywheel.sources import Sources, sources_from_env

GROUP = "sources"


def _phoenix(settings: Settings, sources: Sources) -> tuple[Any, Any]:
    from flywheel.sources.phoenix import PhoenixServer, phoenix_config

    config = phoenix_config(sources)
    return PhoenixServer(settings, config), config


def _mlflow(settings: Settings, sources: Sources) -> tuple[Any, Any]:
    from flywheel.sources.mlflow import MlflowServer, mlflow_config

    config = mlflow_config(sources)
    return MlflowServer(config), config


def _langfuse(settings: Settings, sources: Sources) -> tuple[Any, Any]:
    from flywheel.sources.langfuse import LangfuseFiles
    from flywheel.sources.verdicts import pull_config

    config = pull_config("langfuse", sources)
    return LangfuseFiles(config.folder, config), config


# Per pulled source: the key of its section that names its server (or folder), and how to build it.
SERVERS: dict[str, tuple[str, Callable[[Settings, Sources], tuple[Any, Any]]]] = {
    "phoenix": ("url", _phoenix),
    "mlflow": ("tracking_uri", _mlflow),
    "langfuse": ("folder", _langfuse),
}


def configured(sources: Sources) -> list[str]:
    """The pulled sources whose section names their server, in SERVERS order."""
    pull = sources.pull or {}
    return [name for name, (key, _) in SERVERS.items() if isinstance(pull.get(name), dict) and pull[name].get(key)]


def source_asset(name: str) -> dg.AssetsDefinition:
    """The asset that pulls source `name` (the sources file is read again when it runs)."""

    @dg.asset(key=dg.AssetKey([GROUP, name]), group_name=GROUP, kinds={"python"},
              description=f"Pulls {name}'s AI calls and human annotations since the high-water mark into "
                          f"the landing folder (events/{name}, interventions/{name}); unmappable records "
                          "are quarantined with the reason. landing_sensor then stores them.")
    def _pull(context: dg.AssetExecutionContext, flywheel: FlywheelResource) -> dg.MaterializeResult:
        from flywheel.sources.pull import pull

        settings = flywheel.settings()
        source, config = SERVERS[name][1](settings, sources_from_env())
        report = pull(settings, source, config)
        for line in report.lines():
            context.log.info(line)
        if not report.reconciles():  # pragma: no cover - pull counts every record once
            raise dg.Failure(f"{name}: the pull's counts do not reconcile")
        metadata: dict[str, Any] = {f"{what}_{kind}": dg.MetadataValue.int(counter[kind])
                                    for what, counter in (("fetched", report.fetched), ("landed", report.landed),
                                                          ("duplicates", report.duplicates),
                                                          ("quarantined", report.quarantined))
                                    for kind in ("events", "interventions")}
        metadata["high_water_mark"] = dg.MetadataValue.text(report.hwm_after or "")
        metadata["files"] = dg.MetadataValue.json([str(p) for p in report.files])
        return dg.MaterializeResult(metadata=metadata)

    return _pull


def source_definitions(sources: Sources | None = None) -> tuple[list[dg.AssetsDefinition], list[Any], list[Any]]:
    """(assets, jobs, schedules) of the configured pulled sources; all empty when none is."""
    names = configured(sources if sources is not None else sources_from_env())
    if not names:
        return [], [], []
    assets = [source_asset(n) for n in names]
    job = dg.define_asset_job("pull_sources", selection=dg.AssetSelection.groups(GROUP),
                              description="Pulls every configured source into the landing folder.")
    schedule = dg.ScheduleDefinition(name="pull_schedule", job=job, cron_schedule="*/15 * * * *",
                                     execution_timezone="UTC",
                                     description="Pulls the configured sources every 15 minutes.")
    return assets, [job], [schedule]
