"""Where a training epoch's time goes, next to the BLAS floor's products.

Times the dense minibatch steps of ``DenoisingAutoencoder`` (corruption,
encoder, decoder with the loss, backward pass with the weight gradients and
updates: one compiled call per thread) and the rest of the epoch (bias
updates, the epoch loop), against the same workload's five matrix products
alone, per product, interleaved epoch by epoch.
Medians over ``--epochs``; the table is in units of the floor's epoch.

    python benchmarks/profile_epoch.py --threads 1 --batch 128
"""

import argparse
import collections
import time

import numpy as np
from bench_training import BlasFloor, SkdaeTrainer, make_data
from threadpoolctl import threadpool_info, threadpool_limits

import skdae._autoencoder as _autoencoder
import skdae._minibatch as _minibatch


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
    unit = np.median(rows["floor: epoch"])
    print("\n| part | seconds | of the floor's epoch |\n|---|---|---|")
    for name, values in rows.items():
        median = np.median(values)
        print(f"| {name} | {median:.3f} | {median / unit:.3f} |")


if __name__ == "__main__":
    main()
