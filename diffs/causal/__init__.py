"""Causal tests: steering, weight extrapolation, fork substitution and fork-targeted training."""
