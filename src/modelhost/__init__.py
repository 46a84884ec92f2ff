"""modelhost: self-hosted model hosting that speaks SageMaker's API."""

__version__ = "0.1.0"
