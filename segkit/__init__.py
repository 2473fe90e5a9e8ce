"""segkit: self-configuring 3D medical image segmentation with reversible networks."""

__version__ = "0.1.0"
