"""Benchmark of DenoisingAutoencoder on wide sparse input: reconstruction sampling.

Two tables, printed beside the CPU model and BLAS kernel:

- ``memory``: the issue's case, 200 x 1,000,000 at 0.1% density (1000
  non-zeros per row, binary), float32, ``n_components=16``: the peak RSS
  (``resource.getrusage``) of a fresh process before and after a two-epoch
  ``fit``, and the fit time, for the exact path (batch 50 and 200) and
  reconstruction sampling (batch 50, a few values of ``k``). The memory of
  what must be there (X, the weights and visible biases, Adam's two moments)
  is printed too.
- ``scaling``: seconds per epoch at n_features 1e4, 1e5 and 1e6 with the same
  non-zeros (1000 per row, 200 rows), exact and sampled: the exact path
  grows with n_features, the sampled with the features a minibatch touches.
  An epoch is (fit with 3 epochs - fit with 1 epoch) / 2, best of
  ``--repeats``: the initialisation is left out.

``--quick`` runs smaller sizes (a smoke test). Figures need a quiet machine.
"""

import argparse
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from report import environment, print_table  # noqa: E402

from skdae import DenoisingAutoencoder  # noqa: E402


def wide_binary(n_rows, n_features, per_row, seed=0, dtype=np.float32):
    """A binary CSR matrix with about ``per_row`` non-zeros in every row.

    Built row by row (``scipy.sparse.random`` would draw among all
    n_rows x n_features positions).
    """
    rng = np.random.RandomState(seed)
    cols = [np.unique(rng.randint(n_features, size=per_row))
            for _ in range(n_rows)]
    indptr = np.r_[0, np.cumsum([len(c) for c in cols])]
    return sp.csr_matrix((np.ones(indptr[-1], dtype=dtype),
                          np.concatenate(cols), indptr),
                         shape=(n_rows, n_features))


def _dae(k, batch_size, max_iter, n_components):
    return DenoisingAutoencoder(n_components, reconstruction_sampling=k,
                                batch_size=batch_size, max_iter=max_iter,
                                random_state=0)


# --------------------------------------------------------------------------
# Memory: one fit per fresh process
# --------------------------------------------------------------------------
def _child(spec):
    """Run in a subprocess: one fit, its peak RSS and time, as JSON."""
    import resource

    X = wide_binary(spec["rows"], spec["features"], spec["per_row"])
    # Compile (and load the Numba cache) on a narrow slice first, so that
    # the peak is that of training, not of compilation.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _dae(spec["k"], spec["batch"], 1, spec["components"]).fit(
            X[:, :1000])
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.perf_counter()
        _dae(spec["k"], spec["batch"], spec["epochs"],
             spec["components"]).fit(X)
        elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"before": before * 1024, "after": after * 1024,
                      "time": elapsed}))


def _run_child(spec):
    out = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)],
                         capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    return json.loads(out.stdout.strip().splitlines()[-1])


def memory(args):
    base = dict(rows=200, features=args.features, per_row=args.per_row,
                components=16, epochs=2)
    cases = [("exact", None, 50), ("exact", None, 200)]
    cases += [(f"sampled, k={k}", k, 50) for k in args.k]
    rows = []
    for label, k, batch in cases:
        r = _run_child({**base, "k": k, "batch": batch})
        rows.append([label, batch, f"{r['before'] / 2**20:.0f}",
                     f"{r['after'] / 2**20:.0f}",
                     f"{(r['after'] - r['before']) / 2**20:.0f}",
                     f"{r['time'] / base['epochs']:.2f}"])
    d = args.features
    needed = (16 * d + d) * 4 * 3 + 200 * args.per_row * 8
    print_table(
        f"Peak RSS, 200 x {d} CSR, {args.per_row} non-zeros per row, float32, "
        f"n_components=16, {base['epochs']} epochs (a fresh process per row)",
        ["path", "batch", "RSS before fit (MiB)", "peak RSS (MiB)",
         "growth (MiB)", "s / epoch"], rows)
    print(f"(X, the weights and visible biases and Adam's two moments take "
          f"{needed / 2**20:.0f} MiB.)")


# --------------------------------------------------------------------------
# Scaling: seconds per epoch against n_features, same non-zeros
# --------------------------------------------------------------------------
def _epoch_time(X, k, batch, n_components, repeats):
    times = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(repeats):
            fits = []
            for epochs in (1, 3):
                t0 = time.perf_counter()
                _dae(k, batch, epochs, n_components).fit(X)
                fits.append(time.perf_counter() - t0)
            times.append((fits[1] - fits[0]) / 2)
    return min(times)


def scaling(args):
    rows = []
    for d in args.widths:
        X = wide_binary(200, d, args.per_row)
        # Warm up (compilation, the Numba cache).
        for k in (None, args.k[0]):
            _epoch_time(X[:, :1000], k, 50, 16, 1)
        row = [f"{d:.0e}", X.nnz]
        for k in [None] + list(args.k):
            row.append(f"{_epoch_time(X, k, 50, 16, args.repeats):.3f}")
        rows.append(row)
    print_table(
        f"Seconds per epoch, 200 rows, {args.per_row} non-zeros per row, "
        f"float32, n_components=16, batch 50 (best of {args.repeats})",
        ["n_features", "nnz", "exact"] + [f"k={k}" for k in args.k], rows)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="small sizes: a smoke run")
    p.add_argument("--skip", nargs="*", default=[],
                   choices=["memory", "scaling"])
    p.add_argument("--features", type=int, default=1_000_000)
    p.add_argument("--per-row", type=int, default=1000)
    p.add_argument("--k", type=int, nargs="*", default=[100, 1000])
    p.add_argument("--widths", type=float, nargs="*", default=[1e4, 1e5, 1e6])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return _child(json.loads(args.child))
    args.widths = [int(w) for w in args.widths]
    if args.quick:
        args.features, args.per_row, args.repeats = 100_000, 100, 1
        args.widths = [2000, 20000, 100000]
    print(environment())
    if "memory" not in args.skip:
        memory(args)
    if "scaling" not in args.skip:
        scaling(args)


if __name__ == "__main__":
    main()
