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

:func:`syrk` is the scatter product of the marginalized DAE, called from
Python threads: SciPy's own ``dsyrk`` wrapper holds the GIL for the whole
product, so two threads ran it one after the other.
"""

import ctypes
import functools

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


# ---------------------------------------------------------------------------
# dsyrk without the GIL: SciPy's ``cython_blas`` exports the Fortran-ABI
# routine as a capsule; a ctypes (CFUNCTYPE) call to it releases the GIL.
# ---------------------------------------------------------------------------
@functools.cache
def _cython_blas_dsyrk():
    """The ``dsyrk`` of SciPy's ``cython_blas`` as a ctypes function."""
    from scipy.linalg import cython_blas

    capsule = cython_blas.__pyx_capi__["dsyrk"]
    # Private prototypes: setting argtypes on ctypes.pythonapi's shared
    # function objects would change them for every other user.
    get_name = ctypes.PYFUNCTYPE(ctypes.c_char_p, ctypes.py_object)(
        ("PyCapsule_GetName", ctypes.pythonapi))
    get_pointer = ctypes.PYFUNCTYPE(
        ctypes.c_void_p, ctypes.py_object, ctypes.c_char_p)(
        ("PyCapsule_GetPointer", ctypes.pythonapi))
    address = get_pointer(capsule, get_name(capsule))
    int_p, double_p = ctypes.POINTER(ctypes.c_int), ctypes.POINTER(
        ctypes.c_double)
    # uplo, trans, n, k, alpha, a, lda, beta, c, ldc: all by reference.
    prototype = ctypes.CFUNCTYPE(
        None, ctypes.c_char_p, ctypes.c_char_p, int_p, int_p, double_p,
        ctypes.c_void_p, int_p, double_p, ctypes.c_void_p, int_p)
    return prototype(address)


def syrk(A, C):
    """In place: ``C += A^T A`` in C's upper triangle (float64 BLAS dsyrk).

    A is C-ordered (n, d), C Fortran-ordered (d, d). The call releases the
    GIL, so that threads accumulating their own C run at once; the result
    is bitwise that of ``scipy.linalg.blas.dsyrk(1.0, A.T, beta=1.0, c=C,
    trans=0, lower=0)``, the same routine.
    """
    n, d = A.shape
    if not (A.dtype == C.dtype == np.float64 and A.flags.c_contiguous
            and C.flags.f_contiguous and C.shape == (d, d)
            and A.flags.aligned and C.flags.writeable):
        raise ValueError("syrk takes C-ordered float64 A and a writeable "
                         "Fortran-ordered float64 C of shape (d, d)")
    if n == 0 or d == 0:
        return C
    n_, k_, ld = ctypes.c_int(d), ctypes.c_int(n), ctypes.c_int(d)
    one = ctypes.c_double(1.0)
    # A's memory, read column-major, is A^T (d x n, leading dimension d):
    # "N" gives C += A^T (A^T)^T.
    dsyrk = _cython_blas_dsyrk()  # made once (cached)
    dsyrk(b"U", b"N", ctypes.byref(n_), ctypes.byref(k_), ctypes.byref(one),
          A.ctypes.data, ctypes.byref(ld), ctypes.byref(one), C.ctypes.data,
          ctypes.byref(ld))
    return C
