"""flywheel's benchmark harness: `make bench` (full) and `make bench-quick` (tiny).

`bench.run` plans and orchestrates; every measured run is a fresh `python -m bench.child`
subprocess over scratch data dirs (FLYWHEEL_LANDING / FLYWHEEL_STORE / FLYWHEEL_DB / DAGSTER_HOME),
so wall time and peak memory are those of one `flywheel run`. See bench/run.py for what is measured.
"""
