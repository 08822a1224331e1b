"""Pure, lazy xarray processors: indices, seasons, trends, grassland, burn, water, forest loss,
zonal statistics and alert vectorisation. Nothing here opens files, sends mail, imports Prefect or
computes a dask graph: xarray in, xarray or GeoDataFrame out."""
