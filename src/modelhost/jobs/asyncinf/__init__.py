"""Asynchronous inference: InvokeEndpointAsync's durable queue, workers, notifications
and backlog metrics (docs/async.md)."""
