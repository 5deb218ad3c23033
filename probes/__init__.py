"""Probes on hidden states: confidence trajectories, persona directions, training callbacks."""
