"""modelhost.testing."""
