"""Results: the Zarr store (write, mark complete, collect) and statistics, figures and reports.

Reads a store without importing any model or anything else of this project.
"""
