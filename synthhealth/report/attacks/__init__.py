"""Empirical privacy attacks on synthetic data (membership inference, anonymeter-style risks)."""
