"""livermore-exchange-core."""
