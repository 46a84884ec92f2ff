"""modelhost.gateway."""
