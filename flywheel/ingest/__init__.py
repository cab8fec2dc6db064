"""Ingestion: read landing files (readers), check records against the contracts (validate), stage
them by day (sync), and build each day's stored partitions (partition)."""
