"""Results: the Zarr store (write, mark complete, collect) and statistics, figures and reports.

Reads a store without importing any model or anything else of this project.
"""

__all__ = ["open_sweep"]


def __getattr__(name):
    # lazy, so that `import analysis.store` (used by `sweep plan`) does not import xarray and dask
    if name == "open_sweep":
        from analysis.collect import open_sweep

        return open_sweep
    raise AttributeError(f"module 'analysis' has no attribute {name!r}")
