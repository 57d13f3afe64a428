"""mtlheads: multi-task learning with transformer encoders, studied through their attention heads."""

__version__ = "0.1.0"
