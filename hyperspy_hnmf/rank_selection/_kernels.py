"""Numba kernels of the compressed HALS fits (no GIL: restarts run in threads)."""

import numba
import numpy as np


@numba.njit(nogil=True, cache=True, fastmath=False)
def hals_sweep(A, YB, BtB):
    """One HALS sweep over the columns of ``A`` (in place).

    Minimises ``||Y - A B||^2`` over ``A >= 0`` column by column, given
    ``YB = Y @ B.T`` and ``BtB = B @ B.T``.

    Examples
    --------
    >>> A = np.ones((3, 2)); B = np.array([[1.0, 0], [0, 1]])
    >>> Y = np.array([[1.0, 2], [3, 4], [5, 6]])
    >>> hals_sweep(A, Y @ B.T, B @ B.T); A.tolist()
    [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]
    """
    n, k = A.shape
    for j in range(k):
        d = BtB[j, j]
        if d <= 0:
            continue
        for i in range(n):
            s = YB[i, j]
            for q in range(k):
                s -= A[i, q] * BtB[q, j]
            v = A[i, j] + s / d
            A[i, j] = v if v > 0 else 0.0
