"""Drift statistics: pure numpy on the small arrays (bin counts, quantiles) that SQL computes."""
