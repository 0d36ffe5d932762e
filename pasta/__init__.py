"""pypasta: rootless container networking in the style of pasta (passt's namespace mode)."""

__version__ = "0.1.0"
