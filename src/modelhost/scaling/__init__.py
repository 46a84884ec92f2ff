"""Scaling: Application Auto Scaling for endpoint variants (pure policies, the API, the
loop, scheduled actions in `scheduled.py`), for instance counts and serverless variants'
provisioned concurrency, and serverless variants' scale from zero (`serverless.py`,
`serverless_pool.py`)."""
