"""Where a training epoch's time goes, next to the BLAS floor's products.

Times the dense minibatch steps of ``DenoisingAutoencoder`` (corruption,
encoder, decoder with the loss, backward pass with the weight gradients and
updates: one compiled call per thread) and the rest of the epoch (bias
updates, the epoch loop), against the same workload's five matrix products
alone, per product, interleaved epoch by epoch.
Medians over ``--epochs``; the table is in units of the floor's epoch of
the same round (the median of the paired ratios).

A second table prices the fixed blocks that keep a model the same at any
thread count: the step's products (encoder, decoder, backward, tied weight
gradient) made by BLAS on its blocks of columns (as ``_step_kernels`` makes
them, aligned or split equally) against the same products whole, one thread,
interleaved. OpenBLAS does not give the same bits for a block of columns as
for the same columns of a whole product, so the blocks cannot depend on the
thread count (``--no-blocks`` skips this table).

    python benchmarks/profile_epoch.py --threads 1 --batch 128
"""

import argparse
import collections
import time

import numba
import numpy as np
from bench_training import BlasFloor, SkdaeTrainer, make_data
from threadpoolctl import threadpool_info, threadpool_limits

import skdae._autoencoder as _autoencoder
import skdae._minibatch as _minibatch
from skdae._blas import gemm
from skdae._parallel import COLUMN_ALIGNMENT, UNITS_PER_BLOCK, blocks


class StepTimer:
    """Accumulates the wall time of the minibatch steps of an epoch.

    A dense step is one compiled call per thread (``_step_kernels``), so its
    phases are not timed apart: the table splits an epoch into its steps
    (``_minibatch.forward_backward``: the four phases and the weight updates)
    and the rest (bias updates, the epoch loop).
    """

    def __init__(self):
        self.times = collections.defaultdict(float)
        self._forward_backward = _minibatch.forward_backward
        timer = self

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return timer._forward_backward(*args, **kwargs)
            finally:
                timer.times["steps (phases + weight updates)"] += (
                    time.perf_counter() - start)

        _minibatch.forward_backward = timed
        _autoencoder.forward_backward = timed


def floor_products(X, batch, W, buffers):
    """The floor's epoch, timed per product."""
    H, V, D, G1, G2 = buffers
    times = collections.defaultdict(float)
    clock = time.perf_counter
    for start in range(0, X.shape[0] - batch + 1, batch):
        x = X[start:start + batch]
        t0 = clock()
        np.matmul(x, W.T, out=H)
        t1 = clock()
        np.matmul(H, W, out=V)
        t2 = clock()
        np.matmul(V, W.T, out=D)
        t3 = clock()
        np.matmul(H.T, V, out=G1)
        np.matmul(D.T, x, out=G2)
        t4 = clock()
        times["encoder product"] += t1 - t0
        times["decoder product"] += t2 - t1
        times["backward product"] += t3 - t2
        times["weight gradients"] += t4 - t3
    return times


@numba.njit(nogil=True)
def _step_products(W, stacked_hidden, stacked_visible, G, units, features,
                   reps):
    """The products of ``reps`` tied DAE steps, by the given column edges."""
    n = stacked_hidden.shape[0] // 2
    hidden, delta_hidden = stacked_hidden[:n], stacked_hidden[n:]
    delta_out, corrupted = stacked_visible[:n], stacked_visible[n:]
    for _ in range(reps):
        for b in range(units.shape[0] - 1):
            s, e = units[b], units[b + 1]
            gemm(corrupted, W[s:e].T, hidden[:, s:e])
        for b in range(features.shape[0] - 1):
            s, e = features[b], features[b + 1]
            gemm(hidden, W[:, s:e], delta_out[:, s:e])
        for b in range(units.shape[0] - 1):
            s, e = units[b], units[b + 1]
            gemm(delta_out, W[s:e].T, delta_hidden[:, s:e])
            gemm(stacked_hidden[:, s:e].T, stacked_visible, G[s:e])


def block_costs(args, dtype, rounds=7, reps=50):
    """Seconds per step of the step's products: whole, and by blocks."""
    rng = np.random.default_rng(0)
    W = (0.01 * rng.normal(size=(args.hidden, args.width))).astype(dtype)
    stacked_hidden = rng.uniform(size=(2 * args.batch, args.hidden))
    stacked_visible = rng.uniform(size=(2 * args.batch, args.width))
    stacked_hidden = stacked_hidden.astype(dtype)
    stacked_visible = stacked_visible.astype(dtype)
    G = np.empty_like(W)

    def edges(n, per_block, align):
        parts = blocks(n, per_block, align)
        return np.array([0] + [p.stop for p in parts])

    layouts = {
        "whole products": (edges(args.hidden, args.hidden, 1),
                           edges(args.width, args.width, 1)),
        "fixed blocks, aligned (skdae)": (
            edges(args.hidden, UNITS_PER_BLOCK, COLUMN_ALIGNMENT),
            edges(args.width, _minibatch.FEATURES_PER_BLOCK,
                  COLUMN_ALIGNMENT)),
        "fixed blocks, equal split": (
            edges(args.hidden, UNITS_PER_BLOCK, 1),
            edges(args.width, _minibatch.FEATURES_PER_BLOCK, 1)),
    }
    times = collections.defaultdict(list)
    with threadpool_limits(1):
        for units, features in layouts.values():
            _step_products(W, stacked_hidden, stacked_visible, G, units,
                           features, 1)
        for _ in range(rounds):
            for name, (units, features) in layouts.items():
                start = time.thread_time()
                _step_products(W, stacked_hidden, stacked_visible, G, units,
                               features, reps)
                times[name].append((time.thread_time() - start) / reps)
    unit = np.median(times["whole products"])
    print(f"\n{dtype.__name__}, batch {args.batch}: the step's products, one "
          "thread (CPU time)\n\n| layout | units / features | ms per step "
          "| of the whole products |\n|---|---|---|---|")
    for name, (units, features) in layouts.items():
        median = np.median(times[name])
        print(f"| {name} | {'+'.join(map(str, np.diff(units)))} / "
              f"{'+'.join(map(str, np.diff(features)))} | {1e3 * median:.3f} "
              f"| {median / unit:.3f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", choices=["synthetic", "mnist"],
                        default="mnist")
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--width", type=int, default=784)
    parser.add_argument("--hidden", type=int, default=500)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--no-blocks", action="store_true",
                        help="skip the table of the fixed blocks' cost")
    args = parser.parse_args()

    X = np.ascontiguousarray(make_data(args), dtype=args.dtype)
    blas = [i for i in threadpool_info() if i["user_api"] == "blas"]
    print(f"{X.shape[0]} x {X.shape[1]} {args.dtype}, {args.hidden} hidden, "
          f"batch {args.batch}, {args.threads} thread(s); BLAS: "
          + ", ".join(f"{i['internal_api']} {i['version']} "
                      f"({i.get('architecture')})" for i in blas))
    timer = StepTimer()
    with threadpool_limits(args.threads):
        skdae = SkdaeTrainer(X, args)
        floor = BlasFloor(X, args)
        buffers = (floor.H, floor.V, floor.D, floor.G1, floor.G2)
        rows = collections.defaultdict(list)
        for epoch in range(args.epochs + 1):
            start = time.perf_counter()
            products = floor_products(X, args.batch, floor.W, buffers)
            floor_time = time.perf_counter() - start
            timer.times.clear()
            start = time.perf_counter()
            skdae.epoch(X)
            total = time.perf_counter() - start
            if epoch == 0:
                continue  # warm-up
            rows["floor: epoch"].append(floor_time)
            for name, value in products.items():
                rows[f"floor: {name}"].append(value)
            rows["skdae: epoch"].append(total)
            for name, value in timer.times.items():
                rows[f"skdae: {name}"].append(value)
            rows["skdae: rest (updates, loop)"].append(
                total - sum(timer.times.values()))
    # Each part against the floor's epoch of the same round (paired: the
    # machine's speed drifts between rounds), then the median over rounds.
    unit = np.asarray(rows["floor: epoch"])
    print("\n| part | seconds | of the floor's epoch |\n|---|---|---|")
    for name, values in rows.items():
        print(f"| {name} | {np.median(values):.3f} | "
              f"{np.median(np.asarray(values) / unit):.3f} |")
    if not args.no_blocks:
        block_costs(args, X.dtype.type)


if __name__ == "__main__":
    main()
