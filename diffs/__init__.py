"""Comparisons of a base model and its post-trained child: weights, forks, activations."""
