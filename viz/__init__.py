"""Rendering of postlens results: plotly figures, HTML report, Jupyter display."""
