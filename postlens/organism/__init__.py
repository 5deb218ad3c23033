"""The postlens model organism: arithmetic with personas, a base, an SFT and an RL child."""
