"""The reasoning boundary: unbiased pass@k curves, bootstrap intervals and the crossing k."""
