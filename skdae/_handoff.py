"""Low-latency hand-offs between the threads of a ``BlockRunner``.

A minibatch step hands blocks to the pool's threads several times, each a
millisecond of work or less. Waking a sleeping thread through the operating
system costs 30-100 microseconds on the virtual machines this library runs
on (more when the other core's virtual CPU has halted), which is several
per cent of a step. So, as OpenMP and OpenBLAS do with their own threads, a
waiting thread first spins, without the GIL, on a counter that the other
thread publishes; only if nothing arrives within about a millisecond does
it sleep on a condition variable.

The same atomics serve compiled code that never takes the GIL: ``claim``
(a block counter that several threads draw from) and ``wait_until`` (spin,
then yield, then sleep if idle), for the dense step of
``_step_kernels``, whose team of threads waits between steps in compiled
code.

The counters are read and written with atomic acquire / release operations
(LLVM's, through a Numba intrinsic), so the blocks' results written before
a counter is published are visible to the thread that sees it, on every
architecture, not only on x86's strong memory model.
"""

import sys
import threading

import numba
import numpy as np
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

_jit = numba.njit(cache=True, nogil=True)

# Spins before a waiting thread sleeps: about a millisecond of atomic loads.
SPINS = 1 << 20


def _item_pointer(context, builder, signature, args):
    """The address of ``array[index]``, the intrinsics' first two args."""
    ary = context.make_array(signature.args[0])(context, builder, args[0])
    return cgutils.get_item_pointer(context, builder, signature.args[0], ary,
                                    [args[1]])


@intrinsic
def _load_acquire(typingctx, array, index):
    """``array[index]`` (int64) read with acquire ordering."""
    def codegen(context, builder, signature, args):
        ptr = _item_pointer(context, builder, signature, args)
        return builder.load_atomic(ptr, "acquire", 8)
    return types.int64(array, index), codegen


@intrinsic
def _store_release(typingctx, array, index, value):
    """``array[index] = value`` (int64) written with release ordering."""
    def codegen(context, builder, signature, args):
        ptr = _item_pointer(context, builder, signature, args)
        builder.store_atomic(args[2], ptr, "release", 8)
        return context.get_dummy_value()
    return types.none(array, index, value), codegen


@intrinsic
def _fetch_add(typingctx, array, index, value):
    """``array[index] += value`` (int64), atomically; returns the old value."""
    def codegen(context, builder, signature, args):
        ptr = _item_pointer(context, builder, signature, args)
        return builder.atomic_rmw("add", ptr, args[2], "acq_rel")
    return types.int64(array, index, types.int64), codegen


# Compiled code that waits without the GIL for long (``wait_until``) needs
# the C library's sched_yield and usleep (POSIX): symbols that Numba links
# at load time, so the functions that call them are still cached.
POSIX = sys.platform != "win32"
if POSIX:
    _sched_yield = types.ExternalFunction("sched_yield", types.intc())
    _usleep = types.ExternalFunction("usleep", types.intc(types.uintc))
else:  # pragma: no cover
    @_jit
    def _sched_yield():
        return 0

    @_jit
    def _usleep(microseconds):
        return 0


@_jit
def claim(counters, index):
    """The next number of the counter ``counters[index]`` (from 0)."""
    return _fetch_add(counters, index, 1)


@_jit
def wait_until(counters, index, value, idle=False):
    """Wait in compiled code until ``counters[index]`` reaches ``value``.

    Spins first, then yields the core (to the thread waited for, on a
    descheduled virtual CPU or an oversubscribed machine). An ``idle``
    waiter, which may wait for long (through an epoch's validation), then
    sleeps 50 microseconds at a time, leaving its core to the threads at
    work.
    """
    spins = 0
    while _load_acquire(counters, index) < value:
        spins += 1
        if idle and spins > 1 << 16:
            _usleep(50)
        elif spins > 1 << 14:
            _sched_yield()


@_jit
def publish(counters, index, value):
    """Release ``value`` into ``counters[index]``."""
    _store_release(counters, index, value)


@_jit
def spin_until(counters, start, stop, value, spins):
    """Spin until ``counters[start:stop]`` all reach ``value``.

    Returns whether they did within ``spins`` rounds of atomic loads.
    """
    for _ in range(spins):
        done = True
        for k in range(start, stop):
            if _load_acquire(counters, k) < value:
                done = False
                break
        if done:
            return True
    return False


class Handoff:
    """Generation counters of one caller and its pool threads.

    ``counters[0]`` is the generation the caller published (a task is
    waiting); ``counters[1 + w]`` the last generation pool thread ``w``
    finished. Waiters spin (``spin_until``, without the GIL), then sleep on
    ``condition``, which publishers notify.
    """

    def __init__(self, n_workers):
        self.counters = np.zeros(1 + n_workers, dtype=np.int64)
        self.condition = threading.Condition()
        self.n_workers = n_workers

    def reached(self, start, stop, value):
        return bool(np.all(self.counters[start:stop] >= value))

    def publish(self, index, value):
        """Publish ``value`` at ``index`` and wake any sleeping waiter."""
        with self.condition:
            publish(self.counters, index, value)
            self.condition.notify_all()

    def wait(self, start, stop, value):
        """Wait until ``counters[start:stop]`` all reach ``value``."""
        if spin_until(self.counters, start, stop, value, SPINS):
            return
        with self.condition:
            self.condition.wait_for(lambda: self.reached(start, stop, value))
