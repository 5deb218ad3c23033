"""The result protocol every analysis follows, family results, and reading results back."""
