"""Low-latency hand-offs between the threads of a ``BlockRunner``.

A minibatch step hands blocks to the pool's threads several times, each a
millisecond of work or less. Waking a sleeping thread through the operating
system costs 30-100 microseconds on the virtual machines this library runs
on (more when the other core's virtual CPU has halted), which is several
per cent of a step. So, as OpenMP and OpenBLAS do with their own threads, a
waiting thread first spins, without the GIL, on a counter that the other
thread publishes; only if nothing arrives within about a millisecond does
it sleep on a condition variable.

The counters are read and written with atomic acquire / release operations
(LLVM's, through a Numba intrinsic), so the blocks' results written before
a counter is published are visible to the thread that sees it, on every
architecture, not only on x86's strong memory model.
"""

import threading

import numba
import numpy as np
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

_jit = numba.njit(cache=True, nogil=True)

# Spins before a waiting thread sleeps: about a millisecond of atomic loads.
SPINS = 1 << 20


@intrinsic
def _load_acquire(typingctx, array, index):
    """``array[index]`` (int64) read with acquire ordering."""
    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, signature.args[0],
                                       ary, [args[1]])
        return builder.load_atomic(ptr, "acquire", 8)
    return types.int64(array, index), codegen


@intrinsic
def _store_release(typingctx, array, index, value):
    """``array[index] = value`` (int64) written with release ordering."""
    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, signature.args[0],
                                       ary, [args[1]])
        builder.store_atomic(args[2], ptr, "release", 8)
        return context.get_dummy_value()
    return types.none(array, index, value), codegen


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
