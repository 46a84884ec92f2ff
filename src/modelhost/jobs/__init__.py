"""Batch transform jobs: durable, exactly-once runs of a model over every input record.

`records` (splitting and mini-batching) and `dataprocessing`/`jsonpath` (filters and
join) are pure functions; `objects` reads inputs and writes outputs (local or S3);
`runner` drives one job through instances started for it; `manager` is the SageMaker
operations, persistence and resume on startup; `hooks` loads a finished job's outputs
into its prediction store.
"""
