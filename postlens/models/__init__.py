"""Models: specs, safe loading, adapters, dtypes and devices, comparability, chat templates."""
