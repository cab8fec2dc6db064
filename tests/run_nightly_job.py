"""Run the nightly job for a range of days the way the Dagster daemon does: `execute_job` on a
reconstructable job with the definitions' default (multiprocess) executor, against the instance
at $DAGSTER_HOME. Used by the concurrency tests as a separate process. Exit code 0 on success."""

import sys

import dagster as dg

from assets.jobs import range_tags


def nightly() -> dg.JobDefinition:
    from assets.definitions import defs

    return defs.resolve_job_def("nightly")


if __name__ == "__main__":
    from datetime import date

    first, last = date.fromisoformat(sys.argv[1]), date.fromisoformat(sys.argv[2])
    with dg.DagsterInstance.get() as instance:
        result = dg.execute_job(dg.reconstructable(nightly), instance=instance, tags=range_tags(first, last))
        sys.exit(0 if result.success else 1)
