"""MACD-V alerts."""
