"""Throughput of skdae on a local Dask cluster: 1 worker against 2.

Run from the repository root (needs the ``dask`` extra)::

    python benchmarks/dask_scaling.py

The data set is a dask array generated lazily block by block (structured,
low-rank data squashed into (0, 1)); no process ever holds it whole, and each
worker's ``memory_limit`` is set below its size. For each cluster size it
measures, in rows per second:

- fit: one pass of ``dask_ml.wrappers.Incremental(...).fit`` (one
  ``partial_fit`` per block, the model handed from task to task);
- transform: ``map_blocks(model.transform)`` over every block, reduced to a
  column sum so that nothing large comes back to the client;
- generate: the column sum of the data alone, the cost of producing the
  blocks, which both timings above include.

A reference without Dask, in this process with one BLAS thread, is measured
in the same run: the same blocks generated and consumed one after the other.

Next to each figure, the cores used: the CPU time of the processes doing the
work divided by the wall time. On a shared machine it tells how much CPU they
actually got, which bounds what a second worker can add; the load average is
printed too.
"""

import argparse
import os
import time

import dask.array as da
import numpy as np
from dask.distributed import Client, LocalCluster
from dask_ml.wrappers import Incremental
from threadpoolctl import threadpool_limits

from skdae import DenoisingAutoencoder


def make_block(loadings, block_info=None):
    """Block ``i`` of the data: ``sigmoid(z @ loadings + noise)``, seeded by i.

    ``block_info`` is what ``map_blocks`` passes: where the block is, and its
    shape.
    """
    index = block_info[None]["chunk-location"][0]
    block_rows = block_info[None]["chunk-shape"][0]
    rng = np.random.default_rng([12345, index])
    n_latent, n_features = loadings.shape
    z = rng.standard_normal((block_rows, n_latent), dtype=np.float32)
    x = z @ loadings
    # Uniform noise: several times cheaper to draw than Gaussian.
    x += rng.random((block_rows, n_features), dtype=np.float32) - 0.5
    # In place: the block is the only full-size temporary.
    np.negative(x, out=x)
    np.exp(x, out=x)
    x += 1.0
    np.reciprocal(x, out=x)
    return x


def lazy_data(n_rows, n_features, block_rows, n_latent=16):
    loadings = (np.random.default_rng(0)
                .standard_normal((n_latent, n_features), dtype=np.float32)
                / np.sqrt(n_latent).astype(np.float32))
    n_blocks = -(-n_rows // block_rows)
    chunks = ((block_rows,) * (n_blocks - 1)
              + (n_rows - block_rows * (n_blocks - 1),), (n_features,))
    X = da.map_blocks(make_block, loadings, chunks=chunks,
                      dtype=np.float32, meta=np.empty((0, 0), np.float32))
    return X, loadings


def make_model(n_components):
    return DenoisingAutoencoder(n_components=n_components, random_state=0)


def encode_lazily(model, X):
    """``model.transform`` on every block, with the output chunks declared."""
    return X.map_blocks(model.transform, dtype=X.dtype,
                        chunks=(X.chunks[0], (model.n_components_,)),
                        meta=np.empty((0, 0), dtype=X.dtype))


def warm_up(n_features):
    """Load the cached Numba kernels in a process before anything is timed."""
    X = np.random.default_rng(0).uniform(size=(64, n_features)).astype(
        np.float32)
    DenoisingAutoencoder(n_components=4, random_state=0).partial_fit(
        X).transform(X)


def timed(func, repeat=1, cpu_seconds=time.process_time):
    """Best wall time of ``repeat`` calls, the result, and the cores used.

    The best time is the one least disturbed by other load; "cores used" is
    the CPU time of the processes doing the work divided by the wall time
    (over all repeats): on a busy machine it shows how much CPU they got.
    """
    best, wall, cpu = np.inf, 0.0, 0.0
    for _ in range(repeat):
        cpu_start, start = cpu_seconds(), time.perf_counter()
        result = func()
        elapsed = time.perf_counter() - start
        cpu += cpu_seconds() - cpu_start
        wall += elapsed
        best = min(best, elapsed)
    return best, result, cpu / wall


def bench_reference(X, loadings, n_components, repeat):
    """Same work without Dask: the blocks one after the other, one thread."""
    n_rows = X.shape[0]
    sizes = X.chunks[0]

    def blocks():
        for index, rows in enumerate(sizes):
            yield make_block(loadings, {None: {
                "chunk-location": (index, 0), "chunk-shape": (rows, X.shape[1])}})

    with threadpool_limits(1):
        def fit():
            model = make_model(n_components)
            for block in blocks():
                model.partial_fit(block)
            return model

        t_fit, model, c_fit = timed(fit, repeat)
        t_transform, _, c_transform = timed(
            lambda: sum(model.transform(b).sum(axis=0) for b in blocks()),
            repeat)
        t_generate, _, c_generate = timed(
            lambda: sum(b.sum(axis=0) for b in blocks()), repeat)
    return ((n_rows / t_fit, c_fit), (n_rows / t_transform, c_transform),
            (n_rows / t_generate, c_generate))


def bench_cluster(X, n_workers, memory_limit, n_components, repeat):
    n_rows = X.shape[0]
    # One thread per worker process; the nanny caps the BLAS pools at one
    # thread already, Numba's needs an explicit cap.
    with LocalCluster(n_workers=n_workers, threads_per_worker=1,
                      processes=True, memory_limit=memory_limit,
                      dashboard_address=":0",
                      env={"NUMBA_NUM_THREADS": "1"}) as cluster, \
            Client(cluster) as client:
        client.run(warm_up, X.shape[1])
        seeds = iter(range(repeat))

        def fit():
            # A new block order per repeat: an identical graph would hit
            # the result Dask still holds from the previous one.
            inc = Incremental(make_model(n_components), shuffle_blocks=True,
                              random_state=next(seeds))
            return inc.fit(X).estimator_

        def cpu_seconds():
            return sum(client.run(time.process_time).values())

        t_fit, model, c_fit = timed(fit, repeat, cpu_seconds)
        t_transform, _, c_transform = timed(
            lambda: encode_lazily(model, X).sum(axis=0).compute(), repeat,
            cpu_seconds)
        t_generate, _, c_generate = timed(
            lambda: X.sum(axis=0).compute(), repeat, cpu_seconds)
        memory = client.run(memory_report)
    peak = max(peak for peak, _ in memory.values())
    spilled = sum(spilled for _, spilled in memory.values())
    print(f"{n_workers} worker(s): peak worker memory {peak / 2**20:.0f} MiB, "
          f"spilled to disk {spilled / 2**20:.0f} MiB")
    return ((n_rows / t_fit, c_fit), (n_rows / t_transform, c_transform),
            (n_rows / t_generate, c_generate))


def memory_report(dask_worker):
    """Peak memory of a worker process (sampled) and bytes it spilled."""
    peak = max(dask_worker.monitor.quantities["memory"])
    return peak, dask_worker.data.spilled_total.disk


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--features", type=int, default=256)
    parser.add_argument("--components", type=int, default=64)
    parser.add_argument("--block-rows", type=int, default=25_000)
    parser.add_argument("--memory-limit", default="1GiB",
                        help="memory limit of each worker")
    parser.add_argument("--repeat", type=int, default=1,
                        help="report the best of this many timings")
    args = parser.parse_args()

    X, loadings = lazy_data(args.rows, args.features, args.block_rows)
    size_mib = X.nbytes / 2**20
    print(f"data: {args.rows} x {args.features} float32 = {size_mib:.0f} MiB "
          f"in {X.numblocks[0]} blocks of {args.block_rows} rows, generated "
          f"lazily; worker memory_limit={args.memory_limit}; "
          f"n_components={args.components}; {os.cpu_count()} cores")

    warm_up(args.features)
    rows = [("no Dask, 1 thread (reference)",
             bench_reference(X, loadings, args.components, args.repeat))]
    for n_workers in (1, 2):
        rows.append((f"LocalCluster, {n_workers} worker(s) x 1 thread",
                     bench_cluster(X, n_workers, args.memory_limit,
                                   args.components, args.repeat)))

    header = ("setup", "fit", "transform", "generate")
    for title, per_cpu in (("rows/s (cores used)", False),
                           ("rows per CPU-second", True)):
        print(f"{title:<38}" + "".join(f"{h:>20}" for h in header[1:]))
        for name, results in rows:
            cells = (f"{speed / cores:>20,.0f}" if per_cpu
                     else f"{speed:>13,.0f} ({cores:.2f})"
                     for speed, cores in results)
            print(f"{name:<38}" + "".join(cells))
    print("load average (1, 5, 15 min): "
          + ", ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
