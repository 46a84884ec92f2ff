"""modelhost.fleet."""
