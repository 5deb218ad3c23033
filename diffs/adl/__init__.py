"""The Activation Difference Lens: the traces a fine-tune leaves on unrelated text."""
