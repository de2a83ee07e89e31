"""Submission through submitit: executors, arrays, packing, resources, status, cancel."""
