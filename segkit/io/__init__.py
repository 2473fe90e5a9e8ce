"""Image and dataset input/output."""

from segkit.io.image import Geometry, Image, read_image, write_image

__all__ = ["Geometry", "Image", "read_image", "write_image"]
