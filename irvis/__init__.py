"""irvis: translate between thermal-infrared and visible-light images, and measure it honestly."""

__version__ = "0.1.0"

from irvis.directions import DIRECTIONS, Direction, get_direction  # noqa: E402

__all__ = ["DIRECTIONS", "Direction", "get_direction", "__version__"]
