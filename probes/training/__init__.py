"""Probes in training loops: callbacks, monitors and reward shaping."""
