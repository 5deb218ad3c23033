"""Sampling completions: seeded batched generation, two-model decoding, steering, vLLM."""
