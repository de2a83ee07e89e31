"""Sweep files -> validated spec -> points with stable ids -> job plan; and the click CLI."""
