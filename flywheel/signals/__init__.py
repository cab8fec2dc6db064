"""Signals and decisions: drift of each scenario against its baseline, and the policy that turns
evidence into autonomy levels, confidence gates, audit sampling, prompt-version and tool-boundary
recommendations, with an append-only decision log and a published feed."""
