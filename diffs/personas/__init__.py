"""The persona analysis of a family: directions on the base, each child's shift along them, SAE latents."""
