"""Scaling: Application Auto Scaling for endpoint variants (pure policies, the API, the
loop) and serverless variants' scale from zero (`serverless.py`, `serverless_pool.py`)."""
