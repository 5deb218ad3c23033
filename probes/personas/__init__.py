"""Persona directions, their projections, and each child's move along them."""
