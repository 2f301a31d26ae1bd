"""Matrix products on strided views, called from compiled code.

Numba's ``np.dot`` takes contiguous arrays only, so a product into a block
of columns (``hidden[:, units]``) or from one (``W_dec[:, features]``)
needed a copy or a Python-level ``np.matmul``. :func:`gemm` calls the
``?gemm`` of SciPy's BLAS (through Numba's own wrapper, ``numba_xxgemm``, the
one its ``np.dot`` uses) with leading dimensions and transpose flags read
off the views' strides: any 2-D view whose elements are contiguous along
one axis (row blocks, column blocks, transposes) is used in place.

The wrapper is a symbol of Numba's helper library, so the functions that
call it are cached on disk like every other kernel.
"""

import numba
import numpy as np
from numba import types
from numba.extending import overload
from numba.np.linalg import _BLAS

_jit = numba.njit(cache=True, nogil=True, error_model="numpy")

# BLAS' column-major transpose flags.
_N, _T = ord("n"), ord("t")


def _xxgemm(c, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, ldc):
    """The column-major ``?gemm`` for the dtype of ``c`` (compiled only)."""
    raise NotImplementedError("only callable from Numba-compiled code")


@overload(_xxgemm)
def _xxgemm_overload(c, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta,
                     ldc):
    if c.dtype == types.float32:
        kind = ord("s")
    elif c.dtype == types.float64:
        kind = ord("d")
    else:
        return None
    fn = _BLAS().numba_xxgemm(c.dtype)

    def impl(c, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, ldc):
        return fn(kind, transa, transb, m, n, k, alpha.ctypes, a.ctypes, lda,
                  b.ctypes, ldb, beta.ctypes, c.ctypes, ldc)
    return impl


@_jit
def _operand(X):
    """``(flag, ld)``: X as a column-major BLAS operand of ``op(X)^T``.

    A row-major view (unit stride along its rows) is, read column-major,
    its own transpose: flag ``n``. A column-major one (a transposed view)
    takes flag ``t``. Flag 0: neither (no unit stride).
    """
    rows, cols = X.shape
    size = X.itemsize
    if cols == 1 or X.strides[1] == size:
        ld = X.strides[0] // size if rows > 1 else cols
        return _N, max(ld, cols, 1)
    if rows == 1 or X.strides[0] == size:
        ld = X.strides[1] // size if cols > 1 else rows
        return _T, max(ld, rows, 1)
    return 0, 0


@_jit
def _loops(A, B, C, alpha, beta):
    """``gemm`` without BLAS, for views that BLAS cannot read in place."""
    for i in range(A.shape[0]):
        for j in range(B.shape[1]):
            total = 0.0
            for p in range(A.shape[1]):
                total += A[i, p] * B[p, j]
            C[i, j] = alpha * total + (0.0 if beta == 0.0 else beta * C[i, j])


@_jit
def gemm(A, B, C, alpha=1.0, beta=0.0):
    """In place: ``C = alpha * A @ B + beta * C`` (all three 2-D views).

    A and B may be row-major or column-major views (blocks of rows or
    columns of C-ordered arrays, or their transposes), and C row-major;
    other views get plain loops instead of BLAS. ``beta = 0`` ignores C's
    values (NaN included), as BLAS does. Shapes are the caller's to check.
    """
    m, k = A.shape
    n = B.shape[1]
    if m == 0 or n == 0:
        return
    flag_a, lda = _operand(A)
    flag_b, ldb = _operand(B)
    if k == 0 or flag_a == 0 or flag_b == 0 or not (
            n == 1 or C.strides[1] == C.itemsize):
        # A sum of nothing (BLAS rejects k = 0), or views BLAS cannot read
        # in place (never the case in skdae's own calls).
        _loops(A, B, C, alpha, beta)
        return
    ldc = C.strides[0] // C.itemsize if m > 1 else n
    scalars = np.empty(2, dtype=C.dtype)
    scalars[0], scalars[1] = alpha, beta
    # Column-major: C^T = op(B)^T op(A)^T, so B comes first.
    _xxgemm(C, flag_b, flag_a, n, m, k, scalars[0:1], B, ldb, A, lda,
            scalars[1:2], max(ldc, n, 1))
