"""livermore-worker."""
