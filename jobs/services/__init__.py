"""Writes of the jobs app: jobs, files, batches (one module each)."""
