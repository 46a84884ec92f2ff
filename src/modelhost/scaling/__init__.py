"""Scaling decisions (pure functions with an injected clock) and the loops that apply them."""
