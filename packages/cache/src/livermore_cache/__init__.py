"""livermore-cache."""
