"""The nouns of modelhost (no I/O): statuses, names and ARNs."""
