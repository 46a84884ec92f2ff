"""Desired state and the reconcile loop: models, endpoint configs, endpoints."""
