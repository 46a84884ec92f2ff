"""modelhost.testing: the public test kit (server fixture, churn data, state models, local
S3/Redis/DynamoDB, a fake clock)."""

from modelhost.testing.clock import FakeClock

__all__ = ["FakeClock"]
