"""SAE latent diffing: which dictionary features each child amplified or suppressed."""
