"""gaatool: geometric algebra attention networks for small point clouds.

The stable Python API lives in the subpackages: :mod:`gaatool.ga` (geometric
algebra of R^3), :mod:`gaatool.nn` (attention layers), :mod:`gaatool.models`,
:mod:`gaatool.train` and :mod:`gaatool.tasks`. Importing :mod:`gaatool` does no
work beyond defining the version.
"""
from ._version import __version__

__all__ = ["__version__"]
