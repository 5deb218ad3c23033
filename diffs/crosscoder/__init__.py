"""Crosscoders: one sparse dictionary over several models' activations, and what each latent belongs to."""
