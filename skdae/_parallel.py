"""Deterministic parallelism for training: fixed blocks, single-threaded BLAS.

OpenBLAS computes the same matrix product with different rounding at
different thread counts, so a model trained with multi-threaded BLAS would
depend on the machine's thread settings. Instead, training splits each
minibatch into blocks whose boundaries depend only on the array shapes, runs
every block with single-threaded BLAS and Numba kernels that release the GIL,
and spreads the blocks over a small thread pool. The result is bitwise the
same for any number of threads, and the elementwise work runs in parallel
too. Only one pool is ever busy: BLAS is limited to one thread meanwhile.
"""

import contextvars
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numba
from threadpoolctl import threadpool_info, threadpool_limits

# Rows of a minibatch per block in the forward / backward pass, and hidden
# units per block in the weight-gradient products. Large enough for BLAS to
# run near its peak on one core, small enough to feed two or more cores.
ROWS_PER_BLOCK = 64
UNITS_PER_BLOCK = 256


def blocks(n, per_block):
    """Split ``range(n)`` into near-equal slices of about ``per_block``."""
    n_blocks = max(1, -(-n // per_block))
    bounds = [n * k // n_blocks for k in range(n_blocks + 1)]
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]


def available_threads():
    """Threads training may use: the BLAS and Numba limits, and the CPUs.

    Honours ``threadpoolctl.threadpool_limits`` (which joblib's workers set
    so that ``GridSearchCV(n_jobs=k)`` does not oversubscribe),
    ``NUMBA_NUM_THREADS`` / ``numba.set_num_threads`` and the CPU affinity.
    """
    limits = [info["num_threads"] for info in threadpool_info()
              if info["user_api"] == "blas"]
    limits.append(numba.get_num_threads())
    if hasattr(os, "sched_getaffinity"):
        limits.append(len(os.sched_getaffinity(0)))
    else:  # pragma: no cover
        limits.append(os.cpu_count() or 1)
    return max(1, min(limits))


class _SingleThreadedBLAS:
    """Process-wide BLAS limit of one thread, shared by concurrent fits.

    threadpoolctl's limits are global to the process: if two fits running on
    threads of one process each set and restored the limit, the first to
    finish would restore multi-threaded BLAS under the other. The limit is
    therefore counted: the first fit sets it, the last one restores it.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._users = 0
        self._limits = None

    def __enter__(self):
        with self._lock:
            if self._users == 0:
                self._limits = threadpool_limits(limits=1, user_api="blas")
            self._users += 1

    def __exit__(self, *exc):
        with self._lock:
            self._users -= 1
            if self._users == 0:
                self._limits.restore_original_limits()
                self._limits = None


_single_threaded_blas = _SingleThreadedBLAS()


class BlockRunner:
    """Runs a function over blocks, serially or on a thread pool.

    Use as a context manager around a training run: it limits BLAS to one
    thread and owns the pool for the duration.
    """

    def __init__(self, n_threads=1):
        self.n_threads = n_threads
        self._executor = None

    def __enter__(self):
        _single_threaded_blas.__enter__()
        if self.n_threads > 1:
            self._executor = ThreadPoolExecutor(self.n_threads)
        return self

    def __exit__(self, *exc):
        if self._executor is not None:
            self._executor.shutdown()
            self._executor = None
        _single_threaded_blas.__exit__(*exc)

    def map(self, func, items):
        """Call ``func`` on every item; returns the results in order.

        Each call runs in a copy of the caller's context, so that settings
        held in context variables (``np.errstate``) reach the pool's threads.
        """
        if self._executor is None or len(items) == 1:
            return [func(item) for item in items]
        futures = [self._executor.submit(contextvars.copy_context().run, func,
                                         item) for item in items]
        return [future.result() for future in futures]
