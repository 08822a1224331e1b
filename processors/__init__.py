"""amurwatch processors (see README: architecture)."""
