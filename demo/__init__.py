"""The embedded demo: a synthetic Sentinel-2 / Landsat archive with ground truth, and a local STAC API."""
