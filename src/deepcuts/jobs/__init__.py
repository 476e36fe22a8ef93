"""Batch jobs (publish, learn), each `run(store, ...)`: the CLI and the service call the same."""
