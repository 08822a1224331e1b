"""amurwatch outputs (see README: architecture)."""
