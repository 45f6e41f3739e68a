"""livermore-api."""
