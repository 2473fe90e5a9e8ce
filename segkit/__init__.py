"""segkit: self-configuring 3D medical image segmentation with reversible networks.

`segkit.Predictor`, `segkit.evaluate` and `segkit.plan` (see segkit/api.py) are imported on
first use, so `import segkit` stays light (no torch, no SimpleITK).
"""

from segkit.version import __version__

_API = ("Predictor", "evaluate", "plan")
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    """Lazy access to the Python API."""
    if name in _API:
        import segkit.api

        return getattr(segkit.api, name)
    raise AttributeError(f"module 'segkit' has no attribute {name!r}")
