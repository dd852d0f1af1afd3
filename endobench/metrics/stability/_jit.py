"""numba settings of the T kernels (``*_kernel``: compiled on first use, cached on disk).

The kernels repeat the DAVIS 2016 reference's floating-point operations in the same order and
precision (float32 where it uses float32, numpy's pairwise summation where it sums with numpy),
so the numbers are equal bit for bit, not just close. Reductions whose order numba cannot
reproduce (``np.mean`` of the distance matrix, ``np.arctan2``) stay in numpy.
"""

from __future__ import annotations

import numba

# error_model="numpy": IEEE division (no zero checks), which lets the loops vectorise.
njit = numba.njit(cache=True, nogil=True, error_model="numpy")
