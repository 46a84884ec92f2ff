"""Per-concern reconcilers the controller runs on every pass (see `registry.py`)."""
