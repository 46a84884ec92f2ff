"""Stores: metadata, model artifacts (local paths, file://, s3://) and predictions."""

from modelhost.store.artifacts import ArtifactStore

__all__ = ["ArtifactStore"]
