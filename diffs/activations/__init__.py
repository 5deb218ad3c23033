"""Activation shifts: per-layer residual differences, logit-lens KL and patching."""
