"""The ``lenet5`` command: the four pipeline steps, ``predict`` on image files, and ``bench``."""

from .app import app, main

__all__ = ["app", "main"]
