"""Regia engine: region-guided image generation, run out of Blender's process."""

__version__ = "0.1.0"
