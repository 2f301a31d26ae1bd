"""Deterministic parallelism for training: fixed blocks, single-threaded BLAS.

OpenBLAS computes the same matrix product with different rounding at
different thread counts, so a model trained with multi-threaded BLAS would
depend on the machine's thread settings. Instead, training splits each
minibatch into blocks whose boundaries depend only on the array shapes, runs
every block with single-threaded BLAS and Numba kernels that release the GIL,
and spreads the blocks over the calling thread and a few pool threads that
hand blocks over without sleeping (``_handoff``). The result is bitwise the
same for any number of threads, and the elementwise work runs in parallel
too. Only one pool is ever busy: BLAS is limited to one thread meanwhile.
"""

import itertools
import os
import sys
import threading
from contextlib import contextmanager

import numba
import numpy as np
from sklearn import get_config, set_config
from threadpoolctl import ThreadpoolController

try:
    from threadpoolctl import get_cached_controller as _cached_controller
except ImportError:  # threadpoolctl < 3.8
    _cached_controller = None

from ._handoff import Handoff

# Rows of a minibatch per block in the forward / backward pass, and hidden
# units per block in the weight-gradient products. Large enough for BLAS to
# run near its peak on one core, small enough to feed two or more cores.
ROWS_PER_BLOCK = 64
UNITS_PER_BLOCK = 256

# Rows per block of inference (transform, score_samples...), for
# ``map_row_blocks``. Blocks of 2048 rows let a call of a few thousand rows
# use two threads: paired against blocks of 8192 rows, a 4096-row transform
# on two threads took 0.54x the time, 60000 rows on one thread 1.02x
# (784 x 500 float32 weights; benchmarks/README.md). Fewer rows on wide
# data, so that a block's temporaries stay near ``INFERENCE_ELEMENTS``
# values (32 MB in float64).
INFERENCE_ROWS_PER_BLOCK = 2048
INFERENCE_ELEMENTS = 2**22

# Blocks of columns (hidden units, features) start at a multiple of this
# many columns where they can: OpenBLAS's products on a block of columns
# that starts off a 64-byte boundary ran 5-15% slower (single-threaded
# sgemm and dgemm of a DAE step split in two at 250 / 392 columns, against
# 256 / 384; benchmarks/profile_epoch.py, "the fixed blocks' cost").
COLUMN_ALIGNMENT = 16

# Where BLAS gives whole products the bits of these blocks, one thread makes
# them whole; the check (``_minibatch.blocks_match_whole``,
# ``_network.Workspace.rows_match_whole``) makes each product both ways on
# random data, in at most this many array entries (64 MB in float32).
# Larger steps (full-batch training of wide data) keep the blocks.
CHECK_ELEMENTS = 1 << 24
_checks = {}


def blas_check(key, n_entries, check):
    """``check()`` on single-threaded BLAS, once per ``key`` (cached).

    For the whole-products checks: False, without running ``check``, where
    its arrays would hold more than ``CHECK_ELEMENTS`` entries.
    """
    if n_entries > CHECK_ELEMENTS:
        return False
    found = _checks.get(key)
    if found is None:
        with _single_threaded_blas:
            found = _checks[key] = bool(check())
    return found


def blocks(n, per_block, align=1):
    """Split ``range(n)`` into near-equal slices of about ``per_block``.

    With ``align`` > 1 and blocks of at least ``2 * align``, each inner
    boundary moves to the nearest multiple of ``align`` (by at most
    ``align / 2``: no block empties). The boundaries depend on ``n``,
    ``per_block`` and ``align`` only, never on the thread count.
    """
    n_blocks = max(1, -(-n // per_block))
    if n < 2 * align * n_blocks:
        align = 1
    bounds = [(n * k // n_blocks + align // 2) // align * align
              for k in range(n_blocks)]
    bounds.append(n)
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]


def available_threads():
    """Threads training may use: the BLAS and Numba limits, and the CPUs.

    Honours ``threadpoolctl.threadpool_limits`` (which joblib's workers set
    so that ``GridSearchCV(n_jobs=k)`` does not oversubscribe),
    ``NUMBA_NUM_THREADS`` / ``numba.set_num_threads`` and the CPU affinity.
    """
    limits = [lib.get_num_threads() for lib in _blas_controllers()]
    limits = [n for n in limits if n is not None]
    limits.append(numba.get_num_threads())
    cap = getattr(_job_state, "threads", None)
    if cap is not None:
        limits.append(cap)
    if hasattr(os, "sched_getaffinity"):
        limits.append(len(os.sched_getaffinity(0)))
    else:  # pragma: no cover
        limits.append(os.cpu_count() or 1)
    return max(1, min(limits))


_controller_lock = threading.Lock()
_controller_cache = [None, 0]  # [controller, len(sys.modules) when made]


def _controller():
    """A ``ThreadpoolController``, remade only when modules were imported.

    Making one scans every loaded shared library (milliseconds; more than
    the encoding of a small batch). threadpoolctl >= 3.8 caches it with this
    rule: a BLAS is loaded by importing the extension module linked to it,
    so the controller is current while ``len(sys.modules)`` is unchanged.
    """
    if _cached_controller is not None:
        return _cached_controller()
    controller, n_modules = _controller_cache
    if controller is None or n_modules != len(sys.modules):
        with _controller_lock:
            n_modules = len(sys.modules)
            controller = ThreadpoolController()
            _controller_cache[:] = [controller, n_modules]
    return controller


def _blas_controllers():
    """threadpoolctl's controllers of the BLAS libraries loaded now."""
    return _controller().select(user_api="blas").lib_controllers


def _set_blas_threads(lib, n_threads):
    """Set a BLAS library's thread limit, from whichever thread calls.

    For an OpenBLAS with its own (pthreads) pool, threadpoolctl >= 3.8 lets
    only one "controlling" thread change the process-wide limit and silently
    ignores the others, and a thread that ever set a limit without a
    ``with`` block stays in control while it lives. A fit in a worker thread
    after a fit in the main thread would then run multi-threaded BLAS, and
    give a different model. ``_SingleThreadedBLAS`` is itself the arbiter
    between fits (the first sets, the last restores), so it sets the limit
    through the library's own function.
    """
    setter = getattr(lib, "_real_set_num_threads", None) or lib.set_num_threads
    setter(n_threads)


class _SingleThreadedBLAS:
    """Process-wide BLAS limit of one thread, shared by concurrent fits.

    BLAS limits are global to the process: if two fits running on threads
    of one process each set and restored the limit, the first to finish
    would restore multi-threaded BLAS under the other. The limit is
    therefore counted: the first fit sets it, the last one restores it.
    Every fit checks that the limit holds in its thread (libraries whose
    limit is per thread, as OpenBLAS built on OpenMP, are set there too),
    and refuses to train rather than give a thread-dependent model.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._users = 0
        self._original = []

    def __enter__(self):
        """Limit BLAS; returns whether pool threads must limit it too."""
        with self._lock:
            self._users += 1
            try:
                return self._limit_this_thread(restore_later=True)
            except BaseException:
                self._release()
                raise

    def __exit__(self, *exc):
        with self._lock:
            self._release()

    def _limit_this_thread(self, restore_later):
        """Limit to one thread every BLAS library that is not yet limited.

        Returns whether some library's limit is per thread (OpenBLAS on
        OpenMP), so that other threads calling BLAS need it too.
        """
        libs = _blas_controllers()
        for lib in libs:
            n_threads = lib.get_num_threads()
            if n_threads is not None and n_threads != 1:
                if restore_later:
                    self._original.append((lib, n_threads))
                _set_blas_threads(lib, 1)
                if lib.get_num_threads() != 1:
                    raise RuntimeError(
                        f"skdae could not limit {lib.internal_api} "
                        f"({lib.filepath}) to one thread; it still reports "
                        f"{lib.get_num_threads()}. Training would then depend "
                        "on the number of threads. Set OPENBLAS_NUM_THREADS=1 "
                        "(or OMP_NUM_THREADS=1 / MKL_NUM_THREADS=1) before "
                        "starting Python.")
        return any(getattr(lib, "threading_layer", None) == "openmp"
                   for lib in libs)

    def _release(self):
        self._users -= 1
        if self._users == 0:
            # Restored in reverse, so a library set twice ends as it began.
            for lib, n_threads in reversed(self._original):
                _set_blas_threads(lib, n_threads)
            self._original = []


_single_threaded_blas = _SingleThreadedBLAS()


_pool_thread = threading.local()


def _in_callers_state(func, errstate, config):
    """``func`` run with the caller's numpy error state and sklearn config.

    Both are per thread (numpy's on numpy 1.x; numpy 2 keeps it in a
    context variable, scikit-learn in a thread-local), so a pool thread
    would otherwise see the defaults: warnings the caller silenced, or
    checks (``assume_finite``) the caller turned off. The pool's threads
    belong to one ``BlockRunner``: the state is set in them for good, and
    only when it changed (setting it costs more than a small block).
    """
    state = (errstate, config)

    def run():
        if getattr(_pool_thread, "state", None) != state:
            np.seterr(**errstate)
            set_config(**config)
            _pool_thread.state = state
        return func()
    return run


class BlockRunner:
    """Runs a function over blocks, serially or on a pool of threads.

    Use as a context manager around a training run: it limits BLAS to one
    thread and owns the pool's threads for the duration. Hand-offs spin
    before they sleep (``_handoff``): a minibatch step hands blocks over
    several times.
    """

    def __init__(self, n_threads=1):
        self.n_threads = n_threads
        self._threads = []
        self._at_exit = []
        self._per_thread = False

    @property
    def parallel(self):
        """Whether the runner's pool threads are up (inside ``with``)."""
        return bool(self._threads)

    def start_thread(self, func, args):
        """Start a thread of this runner's run that calls ``func(*args)``.

        It has the pool's BLAS limits; ``func`` must return once told to
        (by a callback of :meth:`at_exit`, which the runner's exit calls
        before it joins the thread).
        """
        def target():
            if self._per_thread:
                _single_threaded_blas._limit_this_thread(False)
            func(*args)

        thread = threading.Thread(target=target, daemon=True,
                                  name=f"skdae-team-{len(self._at_exit)}")
        thread.start()
        self._at_exit.append(thread.join)
        return thread

    def at_exit(self, callback):
        """Call ``callback()`` when the runner exits, before its joins."""
        self._at_exit.insert(0, callback)

    def __enter__(self):
        per_thread = _single_threaded_blas.__enter__()
        self._per_thread = per_thread
        n_workers = self.n_threads - 1  # the calling thread works too
        self._handoff = Handoff(max(n_workers, 0))
        self._generation = 0
        self._task = None
        self._errors = []
        self._threads = [
            threading.Thread(target=self._serve, args=(w, per_thread),
                             name=f"skdae-block-{w}", daemon=True)
            for w in range(n_workers)]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        at_exit, self._at_exit = self._at_exit, []
        for callback in at_exit:
            callback()
        if self._threads:
            self._task = None  # the signal to stop
            self._generation += 1
            self._handoff.publish(0, self._generation)
            for thread in self._threads:
                thread.join()
            self._threads = []
        _single_threaded_blas.__exit__(*exc)

    def _serve(self, w, per_thread):
        """A pool thread: run each published task, then report it done."""
        if per_thread:
            # A library whose limit is per thread is limited here too (the
            # thread ends with the runner: nothing to restore).
            _single_threaded_blas._limit_this_thread(False)
        generation = 0
        while True:
            generation += 1
            self._handoff.wait(0, 1, generation)
            task = self._task
            if task is None:
                return
            try:
                task()
            except BaseException as exc:  # re-raised by the caller
                self._errors.append(exc)
            self._handoff.publish(1 + w, generation)

    def map(self, func, items):
        """Call ``func`` on every item; returns the results in order.

        The calling thread works too: it and the pool's threads take the
        next item until none is left, so a map costs one hand-off per pool
        thread, not one per item. Each call runs with the caller's numpy
        error state (``np.errstate``) and scikit-learn configuration,
        whatever the numpy version and the thread it runs on.
        """
        n_items = len(items)
        if not self._threads or n_items == 1:
            return [func(item) for item in items]
        results = [None] * n_items
        # itertools.count is one C call: two threads never get one number.
        counter = itertools.count()

        def work():
            for k in iter(counter.__next__, None):
                if k >= n_items:
                    return
                results[k] = func(items[k])

        self._task = _in_callers_state(work, np.geterr(), get_config())
        self._generation += 1
        self._handoff.publish(0, self._generation)
        try:
            work()
        finally:
            # The pool's blocks finish before anything is raised: they
            # write into buffers that the caller may reuse.
            self._handoff.wait(1, 1 + len(self._threads), self._generation)
        if self._errors:
            error = self._errors[0]
            self._errors.clear()
            raise error
        return results


def inference_rows_per_block(width):
    """Rows per inference block when temporaries are ``width`` values wide."""
    return max(1, min(INFERENCE_ROWS_PER_BLOCK,
                      INFERENCE_ELEMENTS // max(1, width)))


def map_row_blocks(func, n_rows, rows_per_block, out, in_place=False):
    """``out[rows] = func(rows)`` for fixed blocks of ``range(n_rows)``.

    With ``in_place``, ``func(rows)`` writes ``out[rows]`` itself (and its
    result is not copied).

    For inference (``transform``, ``score_samples``...): the blocks depend
    only on ``n_rows`` and ``rows_per_block``, each runs with
    single-threaded BLAS, and they are spread over the threads available
    (:func:`available_threads`), so ``out`` is bitwise the same for any
    number of threads. ``func`` gets a slice and returns that block's
    result; it must not write outside it. Returns ``out``.
    """
    parts = blocks(n_rows, rows_per_block)

    def run(rows):
        if in_place:
            func(rows)
        else:
            out[rows] = func(rows)

    with BlockRunner(min(available_threads(), len(parts))) as runner:
        runner.map(run, parts)
    return out


# ---------------------------------------------------------------------------
# Independent fits at once: the networks of an ensemble, each trained on its
# own share of the threads. Each job's result depends on its own seed only.
# ---------------------------------------------------------------------------
_job_state = threading.local()


class JobCancelled(Exception):
    """Raised in a job of :func:`run_jobs` once another job has failed."""


def check_cancelled():
    """Raise ``JobCancelled`` if this thread's job of ``run_jobs`` must stop.

    The training loop calls it once per minibatch: a job stops within a step
    of another job's error, or of a ``KeyboardInterrupt`` in the caller.
    """
    stop = getattr(_job_state, "stop", None)
    if stop is not None and stop.is_set():
        raise JobCancelled


@contextmanager
def _as_job(stop, threads):
    previous = (getattr(_job_state, "stop", None),
                getattr(_job_state, "threads", None))
    _job_state.stop = stop
    _job_state.threads = threads if previous[1] is None else min(
        threads, previous[1])
    try:
        yield
    finally:
        _job_state.stop, _job_state.threads = previous


def run_jobs(jobs, n_threads):
    """Call every job of ``jobs`` (callables), ``n_threads`` at a time.

    The calling thread works too; each job sees a share of the threads
    (:func:`available_threads` returns at most ``n_threads // running``
    there) and the caller's numpy error state and scikit-learn
    configuration. The jobs must be independent, so that their results do
    not depend on where or in which order they run.

    If a job raises, or the caller is interrupted, the other jobs stop at
    their next minibatch (:func:`check_cancelled`), every thread is joined,
    and the exception is raised: the caller's own, else that of the first
    failed job in the order of ``jobs``. Returns the results in that order.
    """
    n_jobs = len(jobs)
    n_running = max(1, min(n_threads, n_jobs))
    share = max(1, n_threads // n_running)
    results, errors = [None] * n_jobs, {}
    stop = threading.Event()
    counter = itertools.count()  # one C call: two threads never get one number

    def work(caller):
        with _as_job(stop, share):
            for k in iter(counter.__next__, None):
                if k >= n_jobs or stop.is_set():
                    return
                try:
                    results[k] = jobs[k]()
                except JobCancelled:
                    return
                except Exception as exc:
                    errors[k] = exc
                    stop.set()
                    return
                except BaseException as exc:  # KeyboardInterrupt, SystemExit
                    stop.set()
                    if caller:
                        raise
                    errors[k] = exc
                    return

    threads = [threading.Thread(
        target=_in_callers_state(lambda: work(False), np.geterr(),
                                 get_config()),
        name=f"skdae-job-{w}", daemon=True) for w in range(n_running - 1)]
    for thread in threads:
        thread.start()
    try:
        work(True)
    except BaseException:
        stop.set()
        raise
    finally:
        try:
            for thread in threads:
                while thread.is_alive():
                    thread.join(0.1)
        except BaseException:  # interrupted while joining: stop them first
            stop.set()
            for thread in threads:
                thread.join()
            raise
    if errors:
        raise errors[min(errors)]
    return results
