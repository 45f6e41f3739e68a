"""Venue adapters: one folder per exchange protocol, each with the same module names."""
