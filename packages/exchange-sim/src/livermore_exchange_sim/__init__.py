"""livermore-exchange-sim."""
