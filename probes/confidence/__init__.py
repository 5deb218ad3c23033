"""Confidence: behavioural trajectories and hidden-state probes that read them."""
