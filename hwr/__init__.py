"""hwr: online handwriting recognition (digital ink in, text out)."""

__version__ = "0.1.0"
