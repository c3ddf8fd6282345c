"""Type aliases of tinynn's public signatures.

``Array`` is what layers, losses and kernels take and return: a NumPy array on the host or a numba.cuda device
array (which ships no type information, hence ``Any``) on a GPU. ``PathLike`` is a file path.
"""
from __future__ import annotations

import os
from typing import Any, Union

import numpy as np
from numpy.typing import NDArray

DeviceArray = Any                                 # numba.cuda.cudadrv.devicearray.DeviceNDArray (untyped)
Array = Union[NDArray[np.floating], DeviceArray]
PathLike = Union[str, "os.PathLike[str]"]
# the estimators' X: an array-like (n_samples, n_features) or a scipy.sparse matrix, validated by the estimator
# (scipy's sparse matrices are not numpy ArrayLike, and scipy ships no types tinynn could name here)
MatrixLike = Any

__all__ = ["Array", "DeviceArray", "MatrixLike", "PathLike"]
