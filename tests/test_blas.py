"""``_blas.gemm`` (BLAS on strided views, from compiled code) against NumPy,
and ``_blas.syrk`` (the scatter product without the GIL) against SciPy's."""

import ctypes
import threading

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy.linalg.blas import dsyrk
from threadpoolctl import threadpool_limits

from skdae import _blas
from skdae._blas import gemm, syrk

DTYPES = [np.float32, np.float64]


def _views(rng, dtype):
    """Operands of a (10 x 20) @ (20 x 7) product, in every layout."""
    big = rng.normal(size=(60, 70)).astype(dtype)
    return {
        "rows of a wider array": (big[3:13, 5:25], big[20:40, 30:37]),
        "transposed views": (big[:20, :10].T, big[40:47, 1:21].T),
        "contiguous": (np.ascontiguousarray(big[:10, :20]),
                       np.ascontiguousarray(big[:20, :7])),
        "no unit stride (loops)": (big[::3, ::2][:10, :20],
                                    big[1::2, ::3][:20, :7]),
    }


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["rows of a wider array", "transposed views",
                                    "contiguous", "no unit stride (loops)"])
def test_gemm_matches_numpy_on_strided_views(dtype, layout):
    rng = np.random.default_rng(0)
    A, B = _views(rng, dtype)[layout]
    parent = np.full((14, 12), np.nan, dtype=dtype)
    C = parent[2:12, 3:10]  # a block of columns: rows of stride 12
    gemm(A, B, C)  # beta = 0: the NaN already there is not read
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    assert_allclose(C, A.astype(np.float64) @ B, rtol=rtol, atol=rtol)
    # Nothing outside the block is written.
    outside = np.ones(parent.shape, dtype=bool)
    outside[2:12, 3:10] = False
    assert np.isnan(parent[outside]).all()
    assert not np.shares_memory(A, C) and not np.shares_memory(B, C)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_scales_and_accumulates(dtype):
    rng = np.random.default_rng(1)
    A, B = _views(rng, dtype)["transposed views"]
    C0 = rng.normal(size=(10, 7)).astype(dtype)
    C = C0.copy()
    gemm(A, B, C, 2.0, 0.5)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    assert_allclose(C, 2.0 * (A.astype(np.float64) @ B) + 0.5 * C0,
                    rtol=rtol, atol=rtol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_into_a_view_without_unit_stride(dtype):
    rng = np.random.default_rng(3)
    A, B = _views(rng, dtype)["rows of a wider array"]
    parent = np.zeros((20, 14), dtype=dtype)
    C = parent[::2, ::2]  # 10 x 7, no unit stride: plain loops
    C[...] = 1.0
    gemm(A, B, C, 1.0, 3.0)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    assert_allclose(C, A.astype(np.float64) @ B + 3.0, rtol=rtol, atol=rtol)
    assert (parent[1::2] == 0).all()


def test_gemm_with_empty_dimensions():
    C = np.full((3, 2), 5.0)
    gemm(np.empty((3, 0)), np.empty((0, 2)), C)
    assert_allclose(C, 0.0)  # k = 0: a sum of nothing
    C = np.full((3, 2), 5.0)
    gemm(np.empty((3, 0)), np.empty((0, 2)), C, 1.0, 2.0)
    assert_allclose(C, 10.0)
    gemm(np.empty((0, 4)), np.empty((4, 2)), np.empty((0, 2)))  # no rows


def test_gemm_single_rows_and_columns():
    rng = np.random.default_rng(2)
    W = rng.normal(size=(30, 9))
    row, block = W[4:5], W[10:19, 2:5]  # one row; rows of stride 9
    C = np.empty((1, 3))
    gemm(row, block, C)
    assert_allclose(C, row @ block)
    square, column = W[:9].T, W[:9, 3:4]  # a transposed view; one column
    D = np.empty((9, 1))
    gemm(square, column, D)
    assert_allclose(D, square @ column)


@pytest.mark.parametrize("shape", [(300, 40), (7, 3), (1, 5), (50, 1)])
def test_syrk_is_scipy_s_dsyrk_bit_for_bit(shape):
    rng = np.random.default_rng(0)
    A = rng.normal(size=shape)
    C0 = np.asfortranarray(rng.normal(size=(shape[1], shape[1])))
    C = C0.copy(order="F")
    assert syrk(A, C) is C
    expected = dsyrk(1.0, A.T, beta=1.0, c=C0.copy(order="F"), trans=0,
                     lower=0)
    assert np.array_equal(C, expected)
    # C += A^T A in the upper triangle; the strict lower one is untouched.
    assert_allclose(np.triu(C), np.triu(C0 + A.T @ A), rtol=1e-12,
                    atol=1e-12)
    assert np.array_equal(np.tril(C, -1), np.tril(C0, -1))


def test_syrk_with_no_rows_adds_nothing():
    C = np.asfortranarray(np.arange(9.0).reshape(3, 3))
    syrk(np.empty((0, 3)), C)
    assert np.array_equal(C, np.arange(9.0).reshape(3, 3))


@pytest.mark.parametrize("A, C", [
    (np.ones((4, 3), dtype=np.float32), np.zeros((3, 3), order="F")),
    (np.ones((4, 3), order="F")[:, :2], np.zeros((2, 2), order="F")),
    (np.ones((4, 3)), np.zeros((3, 3))),  # C-ordered C
    (np.ones((4, 3)), np.zeros((2, 2), order="F")),
])
def test_syrk_rejects_other_layouts(A, C):
    with pytest.raises(ValueError, match="Fortran-ordered float64 C"):
        syrk(A, C)


def test_syrk_releases_the_gil():
    # A ctypes function made by CFUNCTYPE (not PYFUNCTYPE) releases the GIL
    # for the call: the marginalized DAE's lanes then run at once.
    shared = ctypes.pythonapi.PyCapsule_GetPointer
    before = (shared.restype, shared.argtypes)
    fn = _blas._cython_blas_dsyrk()
    assert not type(fn)._flags_ & ctypes._FUNCFLAG_PYTHONAPI
    # ctypes.pythonapi's shared function objects are left as they were.
    assert (shared.restype, shared.argtypes) == before


def test_syrk_from_threads_gives_each_thread_s_sum():
    rng = np.random.default_rng(1)
    parts = [rng.normal(size=(200, 30)) for _ in range(4)]
    sums = [np.zeros((30, 30), order="F") for _ in parts]

    def accumulate(i):
        for _ in range(3):
            syrk(parts[i], sums[i])

    with threadpool_limits(1):
        threads = [threading.Thread(target=accumulate, args=(i,))
                   for i in range(len(parts))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for A, C in zip(parts, sums):
            expected = np.zeros((30, 30), order="F")
            for _ in range(3):
                syrk(A, expected)
            assert np.array_equal(C, expected)
