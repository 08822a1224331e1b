"""Finding and loading imagery: STAC search, collection profiles, lazy loading, Earth Engine."""
