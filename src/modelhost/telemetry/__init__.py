"""modelhost.telemetry."""
