"""Benchmark: training and encoding speed of skdae against reference trainers.

Workload (defaults): 60000 x 784 inputs in [0, 1], 500 sigmoid hidden units,
tied weights, masking noise 0.3, cross-entropy, SGD with Nesterov momentum,
batch 128. Every trainer runs the same architecture; their epochs are run
interleaved (skdae, then each reference, then skdae again...) so that all
see the same machine load, and medians are reported with each one's ratio to
skdae. "BLAS floor" is the five matrix products of the workload alone, on the
same shapes, in the same run.

Run ``python benchmarks/bench_training.py --help`` for the options;
``--quick`` gives a smoke run in about a minute.
"""

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from report import paired_ratio, settle
from threadpoolctl import threadpool_info, threadpool_limits

import datasets

HERE = Path(__file__).resolve().parent
DATA_DIR = HERE / "data"
ROOT = HERE.parent

try:
    import torch
except ImportError:  # the PyTorch rows are skipped
    torch = None


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------
def load_mnist():
    """MNIST train + validation (60000 x 784, float32 in [0, 1))."""
    (X_train, _), (X_valid, _), _ = datasets.mnist()
    return np.concatenate([X_train, X_valid])


def make_data(args):
    if args.data == "mnist":
        X = load_mnist()[: args.rows]
        if args.width != X.shape[1]:
            raise SystemExit("--width applies to synthetic data only")
        return X
    # Synthetic: MNIST-like sparsity (many exact zeros) and range.
    rng = np.random.RandomState(0)
    X = rng.uniform(size=(args.rows, args.width)).astype(np.float32)
    X[X < 0.5] = 0.0
    return X


# --------------------------------------------------------------------------
# Trainers: each has epoch(X) running one epoch over X
# --------------------------------------------------------------------------
class SkdaeTrainer:
    name = "skdae"

    def __init__(self, X, args):
        from skdae import DenoisingAutoencoder

        self.model = DenoisingAutoencoder(
            args.hidden, corruption_level=0.3, solver="sgd",
            learning_rate_init=args.lr, momentum=0.9, batch_size=args.batch,
            max_iter=1, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.model.partial_fit(X[: 4 * args.batch])  # compiles the kernels

    def epoch(self, X):
        # The epoch loop of fit / partial_fit without the input validation
        # (two passes over X per call that fit does once).
        self.model._train(X, incremental=True)

    def encode(self, X):
        return self.model.transform(X)


class TorchTrainer:
    """An idiomatic PyTorch CPU DAE: autograd, nn.functional, optim.SGD."""

    name = "PyTorch"

    def __init__(self, X, args):
        dtype = torch.float32 if X.dtype == np.float32 else torch.float64
        torch.manual_seed(0)
        n_features = X.shape[1]
        bound = 4 * np.sqrt(6.0 / (n_features + args.hidden))
        self.W = torch.nn.Parameter(
            torch.empty(args.hidden, n_features, dtype=dtype).uniform_(-bound,
                                                                      bound))
        self.b_h = torch.nn.Parameter(torch.zeros(args.hidden, dtype=dtype))
        self.b_v = torch.nn.Parameter(torch.zeros(n_features, dtype=dtype))
        self.opt = torch.optim.SGD([self.W, self.b_h, self.b_v], lr=args.lr,
                                   momentum=0.9, nesterov=True)
        self.batch = args.batch
        self.epoch(torch.from_numpy(X[: 4 * args.batch]))

    def loss(self, x):
        x_tilde = x * (torch.rand_like(x) >= 0.3)
        h = torch.sigmoid(torch.nn.functional.linear(x_tilde, self.W, self.b_h))
        logits = torch.nn.functional.linear(h, self.W.t(), self.b_v)
        return torch.nn.functional.binary_cross_entropy_with_logits(
            logits, x, reduction="sum") / x.shape[0]

    def epoch(self, X):
        X = torch.from_numpy(X) if isinstance(X, np.ndarray) else X
        perm = torch.randperm(X.shape[0])
        for start in range(0, X.shape[0], self.batch):
            x = X[perm[start:start + self.batch]]
            self.opt.zero_grad()
            loss = self.loss(x)
            loss.backward()
            self.opt.step()

    def encode(self, X):
        with torch.no_grad():
            H = torch.sigmoid(torch.nn.functional.linear(torch.from_numpy(X),
                                                         self.W, self.b_h))
        return H.numpy()


class NumpyTrainer:
    """The same model in plain NumPy, written the obvious way."""

    name = "NumPy"

    def __init__(self, X, args):
        rng = np.random.default_rng(0)
        n_features = X.shape[1]
        bound = 4 * np.sqrt(6.0 / (n_features + args.hidden))
        self.W = rng.uniform(-bound, bound,
                             (args.hidden, n_features)).astype(X.dtype)
        self.b_h = np.zeros(args.hidden, X.dtype)
        self.b_v = np.zeros(n_features, X.dtype)
        self.vel = [np.zeros_like(p) for p in (self.W, self.b_h, self.b_v)]
        self.rng, self.lr, self.batch = rng, args.lr, args.batch

    def epoch(self, X):
        order = self.rng.permutation(X.shape[0])
        params = (self.W, self.b_h, self.b_v)
        for start in range(0, X.shape[0], self.batch):
            x = X[order[start:start + self.batch]]
            x_tilde = x * (self.rng.random(x.shape, dtype=X.dtype) >= 0.3)
            h = 1 / (1 + np.exp(-(x_tilde @ self.W.T + self.b_h)))
            logits = h @ self.W + self.b_v
            z = 1 / (1 + np.exp(-logits))
            _ = np.sum(np.logaddexp(0, logits) - x * logits)  # the loss
            d_out = (z - x) / x.shape[0]
            d_h = (d_out @ self.W.T) * h * (1 - h)
            grads = (d_h.T @ x_tilde + h.T @ d_out, d_h.sum(0), d_out.sum(0))
            for p, v, g in zip(params, self.vel, grads):
                v *= 0.9
                v -= self.lr * g
                p += 0.9 * v - self.lr * g


class RBMTrainer:
    name = "BernoulliRBM"

    def __init__(self, X, args):
        from sklearn.neural_network import BernoulliRBM

        self.model = BernoulliRBM(args.hidden, batch_size=args.batch,
                                  n_iter=1, random_state=0)

    def epoch(self, X):
        self.model.fit(X)  # n_iter=1: one epoch


class BlasFloor:
    """The five matrix products of a training step, nothing else.

    As an encoder: the encoder's product alone, into a buffer made once
    (BLAS on all its threads), the floor of ``transform``.
    """

    name = "BLAS floor"

    def __init__(self, X, args):
        n_features, b, k = X.shape[1], args.batch, args.hidden
        self.W = np.random.RandomState(0).uniform(
            -0.1, 0.1, (k, n_features)).astype(X.dtype)
        self.H = np.empty((b, k), X.dtype)
        self.D = np.empty((b, k), X.dtype)
        self.V = np.empty((b, n_features), X.dtype)
        self.G1 = np.empty((k, n_features), X.dtype)
        self.G2 = np.empty((k, n_features), X.dtype)
        self.batch = b

    def epoch(self, X):
        W, b = self.W, self.batch
        for start in range(0, X.shape[0] - b + 1, b):
            x = X[start:start + b]
            np.matmul(x, W.T, out=self.H)
            np.matmul(self.H, W, out=self.V)
            np.matmul(self.V, W.T, out=self.D)
            np.matmul(self.H.T, self.V, out=self.G1)
            np.matmul(self.D.T, x, out=self.G2)

    def encode(self, X):
        out = getattr(self, "codes", None)
        if out is None or out.shape[0] != X.shape[0]:
            out = self.codes = np.empty((X.shape[0], self.W.shape[0]),
                                        X.dtype)
        return np.matmul(X, self.W.T, out=out)


# --------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------
def set_threads(n):
    """Limit BLAS / OpenMP pools (threadpoolctl) and PyTorch to n threads."""
    limits = threadpool_limits(n)
    if torch is not None:
        torch.set_num_threads(n)
    return limits


def time_epochs(trainers, X, n_epochs):
    """Interleaved epochs: one warm-up each, then n_epochs rounds.

    Returns each trainer's epoch times, round by round: a round's epochs
    ran back to back, so their ratios are paired (:func:`paired_ratio`).
    """
    times = {t.name: [] for t in trainers}
    for round_ in range(n_epochs + 1):
        for t in trainers:
            settle()
            start = time.perf_counter()
            t.epoch(X)
            if round_:
                times[t.name].append(time.perf_counter() - start)
    return times


def time_encode(trainers, X, repeats=5):
    rates = {t.name: [] for t in trainers}
    for _ in range(repeats + 1):
        for t in trainers:
            settle()
            start = time.perf_counter()
            t.encode(X)
            rates[t.name].append(X.shape[0] / (time.perf_counter() - start))
    return {k: float(np.median(v[1:])) for k, v in rates.items()}


def epoch_benchmark(X, args, threads, dtype):
    Xd = X.astype(dtype)
    classes = [SkdaeTrainer, BlasFloor, NumpyTrainer]
    if torch is not None and not args.no_torch:
        classes.insert(1, TorchTrainer)
    if not args.no_rbm:
        classes.append(RBMTrainer)
    with set_threads(threads):
        trainers = [cls(Xd, args) for cls in classes]
        return time_epochs(trainers, Xd, args.epochs)


def transform_benchmark(X, args, threads, dtype):
    """transform() rows/s of skdae and PyTorch, and of skdae's row blocks.

    With the floor: the encoder's product alone (``BlasFloor.encode``).
    skdae encodes by fixed blocks of rows on single-threaded BLAS (its codes
    do not depend on the thread count); the last rows time it with other
    block sizes than the default, which this measurement chose.
    """
    from skdae import _parallel

    Xd = X.astype(dtype)
    classes = [SkdaeTrainer, BlasFloor]
    if torch is not None and not args.no_torch:
        classes.append(TorchTrainer)
    with set_threads(threads):
        encoders = [cls(Xd, args) for cls in classes]
        rates = time_encode(encoders, Xd)
        default = _parallel.INFERENCE_ROWS_PER_BLOCK
        by_block = {}
        try:
            for rows in args.block_rows:
                _parallel.INFERENCE_ROWS_PER_BLOCK = rows
                by_block[rows] = time_encode(encoders[:1], Xd)["skdae"]
        finally:
            _parallel.INFERENCE_ROWS_PER_BLOCK = default
    return rates, by_block


SUBPROCESS_FIT = r"""
import json, os, resource, sys, time, tracemalloc, warnings
import numpy as np
import scipy.sparse as sp
warnings.simplefilter("ignore")
cfg = json.loads(sys.argv[1])
rng = np.random.RandomState(0)
if cfg["sparse"]:
    X = sp.random(cfg["rows"], cfg["width"], density=cfg["density"],
                  format="csr", dtype=np.float32, random_state=rng)
    nbytes = X.data.nbytes + X.indices.nbytes + X.indptr.nbytes
else:
    X = rng.uniform(size=(cfg["rows"], cfg["width"])).astype(np.float32)
    X[X < 0.5] = 0
    nbytes = X.nbytes
from threadpoolctl import threadpool_info, threadpool_limits
threadpool_limits(cfg["threads"])
t0 = time.perf_counter()
if cfg["mode"] == "startup":
    # What any scikit-learn estimator on Numba kernels imports, timed apart
    # from skdae's own modules: the floor of the start-up.
    import numba, sklearn.base, sklearn.utils.validation
t_deps = time.perf_counter()
from skdae import DenoisingAutoencoder
t1 = time.perf_counter()
def model(verbose=0):
    return DenoisingAutoencoder(cfg["hidden"], solver="sgd", batch_size=cfg["batch"],
                                max_iter=1, random_state=0, verbose=verbose)
if cfg["mode"] == "startup":
    import contextlib, io, re
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        model(1).fit(X)
        t2 = time.perf_counter()
        model(1).fit(X)
        t3 = time.perf_counter()
    epochs = [float(e) for e in re.findall(r"time = ([0-9.]+)s", out.getvalue())]
    print(json.dumps(dict(import_s=t1 - t0, deps_import_s=t_deps - t0,
                          first_fit_s=t2 - t1, second_fit_s=t3 - t2,
                          epochs=epochs)))
else:
    model().fit(X[:1000])  # compiled kernels loaded before measuring
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    model().set_params(max_iter=2).fit(X)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(dict(input_mb=nbytes / 2**20, traced_peak_mb=peak / 2**20,
                          rss_growth_mb=(rss1 - rss0) / 1024)))
"""


def run_subprocess(cfg, env=None, python=None):
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    out = subprocess.run([python or sys.executable, "-c", SUBPROCESS_FIT,
                          json.dumps(cfg)],
                         capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def startup_benchmark(args, python=None):
    """First fit in a fresh process, with an empty then a warm Numba cache.

    ``python``: the interpreter to run it with (default: this one).
    """
    cfg = dict(mode="startup", sparse=False, rows=args.rows, width=args.width,
               hidden=args.hidden, batch=args.batch, threads=args.threads[-1])
    results = {}
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for label in ("empty cache", "warm cache"):
            r = run_subprocess(cfg, env, python)
            # Whatever is not the steady-state epoch: import, validation,
            # compiling or loading the kernels.
            r["not_training_s"] = r["import_s"] + r["first_fit_s"] - r["epochs"][-1]
            r["skdae_s"] = r["not_training_s"] - r["deps_import_s"]
            results[label] = r
    return results


def memory_benchmark(args):
    results = {}
    dense = dict(mode="memory", sparse=False, rows=args.rows, width=args.width,
                 hidden=args.hidden, batch=args.batch, threads=1)
    results["dense"] = run_subprocess(dense)
    sparse = dict(dense, sparse=True, rows=args.sparse_rows,
                  width=args.sparse_width, density=args.sparse_density)
    results["sparse CSR"] = run_subprocess(sparse)
    return results


def sparse_benchmark(args):
    """Epoch time of CSR input against the dense array of the same data."""
    rng = np.random.RandomState(0)
    rows = []
    for density in (args.sparse_density / 2, args.sparse_density,
                    args.sparse_density * 4):
        Xs = sp.random(args.sparse_rows, args.sparse_width, density=density,
                       format="csr", dtype=np.float32, random_state=rng)
        Xd = Xs.toarray()
        with set_threads(1):
            trainers = [SkdaeTrainer(Xd, args), SkdaeTrainer(Xd, args)]
            trainers[0].name, trainers[1].name = "sparse", "dense"
            data = {"sparse": Xs, "dense": Xd}
            times = {"sparse": [], "dense": []}
            for round_ in range(args.epochs + 1):
                for t in trainers:
                    settle()
                    start = time.perf_counter()
                    t.epoch(data[t.name])
                    if round_:
                        times[t.name].append(time.perf_counter() - start)
        rows.append((density, Xs.nnz, float(np.median(times["sparse"])),
                     float(np.median(times["dense"]))))
        del Xd
    return rows


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------
def _default_block_rows():
    from skdae import _parallel

    return _parallel.INFERENCE_ROWS_PER_BLOCK


def print_table(header, rows):
    widths = [max(len(str(r[i])) for r in [header] + rows)
              for i in range(len(header))]
    line = "| " + " | ".join(str(h).ljust(w) for h, w in zip(header, widths)) + " |"
    print(line)
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |")
    print()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", choices=["synthetic", "mnist"], default="synthetic")
    p.add_argument("--rows", type=int, default=60000)
    p.add_argument("--width", type=int, default=784, help="features (synthetic)")
    p.add_argument("--hidden", type=int, default=500)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--epochs", type=int, default=3,
                   help="timed epochs per trainer, after one warm-up epoch")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--no-rbm", action="store_true")
    p.add_argument("--sparse-rows", type=int, default=2000)
    p.add_argument("--sparse-width", type=int, default=20000)
    p.add_argument("--sparse-density", type=float, default=0.01)
    p.add_argument("--block-rows", type=int, nargs="+",
                   default=[1024, 2048, 4096, 8192, 16384],
                   help="rows per block of skdae's transform to compare")
    p.add_argument("--skip", nargs="*", default=[],
                   choices=["epochs", "transform", "startup", "memory",
                            "sparse"])
    p.add_argument("--startup-python", nargs="*", default=[],
                   help="further interpreters to time the start-up with, "
                        "e.g. that of a venv holding skdae's dependencies "
                        "only (scikit-learn imports pandas if it is there)")
    p.add_argument("--quick", action="store_true",
                   help="10000 rows, 1 timed epoch, float32, no RBM")
    args = p.parse_args(argv)
    if args.quick:
        args.rows, args.epochs, args.dtypes, args.no_rbm = 10000, 1, ["float32"], True
        args.sparse_rows = 500
    if torch is None and not args.no_torch:
        print("PyTorch is not installed: its rows are skipped "
              "(pip install torch==2.13.0).\n")

    X = make_data(args)
    print(f"skdae benchmark: {args.data} data {X.shape[0]} x {X.shape[1]}, "
          f"{args.hidden} hidden, batch {args.batch}, SGD, masking 0.3, "
          f"cross-entropy, tied weights; median of {args.epochs} epochs "
          f"after 1 warm-up, interleaved.")
    print(f"numpy {np.__version__}, torch "
          f"{torch.__version__ if torch is not None else '-'}, "
          f"{os.cpu_count()} CPUs")
    # The BLAS kernel decides the floor: OPENBLAS_CORETYPE, if set, forces one.
    for info in threadpool_info():
        print(f"{info['user_api']}: {info['internal_api']} "
              f"{info.get('version')} ({info.get('architecture', '-')} kernel), "
              f"{os.path.basename(info['filepath'])}")
    if torch is not None:
        print(f"torch BLAS: {'MKL' if torch.backends.mkl.is_available() else '-'}")
    print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}\n")

    if "epochs" not in args.skip:
        epoch_rows = []
        for dtype in args.dtypes:
            for threads in args.threads:
                epochs = epoch_benchmark(X, args, threads, dtype)
                print(f"  [{dtype}, {threads} thread(s)] " + ", ".join(
                    f"{k} {np.median(v):.3f}" for k, v in epochs.items()),
                    file=sys.stderr, flush=True)
                ref = epochs["skdae"]
                for name, t in epochs.items():
                    epoch_rows.append((dtype, threads, name,
                                       f"{np.median(t):.3f}",
                                       f"{paired_ratio(t, ref):.2f}"))
        print("Seconds per epoch, medians (ratio: the median over rounds of "
              "time / skdae's time in the same round)")
        print_table(("dtype", "threads", "trainer", "s/epoch", "ratio"),
                    epoch_rows)

    if "transform" not in args.skip:
        encode_rows, block_rows = [], []
        for dtype in args.dtypes:
            for threads in args.threads:
                rates, by_block = transform_benchmark(X, args, threads, dtype)
                for name, r in rates.items():
                    encode_rows.append((dtype, threads, name, f"{r:,.0f}",
                                        f"{r / rates['skdae']:.2f}"))
                block_rows.append((dtype, threads, *(
                    f"{r:,.0f}" for r in by_block.values())))
        print(f"Encoding throughput, transform() of all {X.shape[0]} rows "
              "(ratio: rows/s / skdae's rows/s)")
        print_table(("dtype", "threads", "encoder", "rows/s", "ratio"),
                    encode_rows)
        print("skdae transform() rows/s by rows per block (the default: "
              f"{_default_block_rows()})")
        print_table(("dtype", "threads", *map(str, args.block_rows)),
                    block_rows)

    if "startup" not in args.skip:
        rows = []
        for python in [None, *args.startup_python]:
            res = startup_benchmark(args, python)
            rows += [(python or "this one", k, f"{r['import_s']:.2f}",
                      f"{r['first_fit_s']:.2f}", f"{r['second_fit_s']:.2f}",
                      f"{r['not_training_s']:.2f}", f"{r['deps_import_s']:.2f}",
                      f"{r['skdae_s']:.2f}") for k, r in res.items()]
        print(f"First fit (max_iter=1) in a fresh process, "
              f"{args.threads[-1]} thread(s); 'not training' = import + "
              "first fit - steady epoch; 'sklearn + numba' = the import of "
              "numba, sklearn.base and sklearn.utils.validation alone, "
              "'skdae' = not training - that")
        print_table(("Python", "Numba cache", "import s", "first fit s",
                     "second fit s", "not training s", "sklearn + numba s",
                     "skdae s"), rows)

    if "memory" not in args.skip:
        res = memory_benchmark(args)
        print("Peak memory of fit (2 epochs) beyond the input, in a subprocess")
        print_table(("input", "input MB", "traced peak MB", "max RSS growth MB"),
                    [(k, f"{r['input_mb']:.1f}", f"{r['traced_peak_mb']:.1f}",
                      f"{r['rss_growth_mb']:.1f}") for k, r in res.items()])

    if "sparse" not in args.skip:
        res = sparse_benchmark(args)
        print(f"Sparse CSR against dense input, {args.sparse_rows} x "
              f"{args.sparse_width}, float32, 1 thread")
        print_table(("density", "nnz", "sparse s/epoch", "dense s/epoch",
                     "sparse / dense"),
                    [(f"{d:.3%}", n, f"{s:.3f}", f"{dd:.3f}", f"{s / dd:.2f}")
                     for d, n, s, dd in res])


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
