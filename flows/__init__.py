"""Prefect flows, settings and the amurwatch CLI."""
