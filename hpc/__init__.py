"""What runs on a node: the point runner, devices (multi-device JAX), profiling."""
