"""Benchmark of MarginalizedDenoisingAutoencoder (mSDA).

Three parts, each printed as a table beside the CPU model and BLAS kernel:

- ``speed``: seconds to fit one and two closed-form layers on 60000 x 784
  (MNIST by default) against the cost of what a layer must do, measured in
  the same run: the scatter product ``X^T X`` as one BLAS ``dsyrk`` call on a
  float64 copy, the Cholesky solve of the (d + 1) x (d + 1) system with d
  right-hand sides (``scipy.linalg.cho_factor`` / ``cho_solve``), and, for a
  layer that feeds another, its output product ``X @ W.T``.
- ``accuracy``: a LogisticRegression on the raw pixels, on PCA components, on
  mSDA features and on SGD DenoisingAutoencoder codes, on MNIST and
  Fashion-MNIST: test accuracy and fit time of the feature learner.
- ``bow``: a synthetic bag-of-words (a topic model whose word frequencies
  follow Zipf's law, 50,000 words, a few thousand documents, CSR) for the
  reduced mSDA (``n_components=r``): fit time, peak memory (tracemalloc) and
  the accuracy of a linear classifier predicting each document's topic;
  and for DenoisingAutoencoder with and without reconstruction sampling
  (``--bow-k``), trained on the same documents.

MNIST and Fashion-MNIST come through ``datasets.py`` (downloaded on first use
into benchmarks/data/). ``--quick`` runs every part on
small sizes (a smoke test); figures need a quiet machine.
"""

import argparse
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from scipy.linalg.blas import dsyrk
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

import datasets

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from report import environment, print_table  # noqa: E402

from skdae import DenoisingAutoencoder  # noqa: E402
from skdae import MarginalizedDenoisingAutoencoder as MSDA  # noqa: E402


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------
def load_mnist():
    """MNIST: (X_train 60000 x 784, y_train, X_test 10000 x 784, y_test)."""
    (Xa, ya), (Xb, yb), (Xt, yt) = datasets.mnist()
    return np.concatenate([Xa, Xb]), np.concatenate([ya, yb]), Xt, yt


def load_fashion_mnist():
    """Fashion-MNIST in the same form as :func:`load_mnist`."""
    (X, y), (Xt, yt) = datasets.fashion_mnist()
    return X, y, Xt, yt


def make_bag_of_words(n_docs, n_words, n_topics, doc_length, seed=0):
    """Counts from a topic model with Zipf-distributed word frequencies.

    Every topic reweights the Zipf base distribution of the vocabulary by a
    log-normal factor per word (so topics share the frequent words and
    differ in the rare ones); a document mixes its own topic (weight 0.6)
    with the background and draws Poisson(doc_length) words. Its label is
    its topic.
    """
    rng = np.random.RandomState(seed)
    base = 1.0 / np.arange(1, n_words + 1) ** 1.07
    topics = base * rng.lognormal(0, 1.5, size=(n_topics, n_words))
    topics /= topics.sum(axis=1, keepdims=True)
    base /= base.sum()
    y = rng.randint(n_topics, size=n_docs)
    rows, cols, vals = [], [], []
    for i in range(n_docs):
        probs = 0.6 * topics[y[i]] + 0.4 * base
        words = rng.choice(n_words, size=rng.poisson(doc_length), p=probs)
        idx, counts = np.unique(words, return_counts=True)
        rows.append(np.full(len(idx), i))
        cols.append(idx)
        vals.append(counts)
    X = sp.csr_matrix((np.concatenate(vals).astype(np.float64),
                       (np.concatenate(rows), np.concatenate(cols))),
                      shape=(n_docs, n_words))
    # Binary presence, as the paper's text features and mSDA's masking
    # noise suit.
    X.data[:] = 1.0
    return X, y


# --------------------------------------------------------------------------
# Measurement
# --------------------------------------------------------------------------
# The clock of the speed part: wall time, or with --clock cpu the process's
# CPU time (for --threads 1 on a loaded machine: time spent descheduled is
# not counted).
CLOCK = [time.perf_counter]


def best_of(func, repeats):
    times = []
    for _ in range(repeats):
        t0 = CLOCK[0]()
        func()
        times.append(CLOCK[0]() - t0)
    return min(times)


def speed(X, repeats):
    """Fit time of mSDA layers against the scatter, solve and output costs.

    The references and the fits run interleaved, one round after the other:
    each round gives a ratio (the machine's load then weighs on both sides),
    and the table shows the median ratio and the best time of each part.
    """
    n, d = X.shape
    X64 = np.ascontiguousarray(X, dtype=np.float64)
    C = np.zeros((d, d), order="F")
    S = np.asarray(X64.T @ X64) + np.eye(d)
    Q = np.ones((d + 1, d + 1)) * 1e-3
    Q[:d, :d] = S
    Q[d, d] = n
    Pt = np.asarray(Q[:, :d], order="C")
    data = {dtype: (np.ascontiguousarray(X, dtype=dtype),
                    np.ascontiguousarray(np.eye(d, dtype=dtype)))
            for dtype in (np.float64, np.float32)}
    configs = [(dtype, n_layers) for dtype in data for n_layers in (1, 2)]
    times = {key: [] for key in ["syrk", "solve", *data, *configs]}
    ratios = {config: [] for config in configs}
    for _ in range(repeats):
        times["syrk"].append(best_of(lambda: dsyrk(
            1.0, X64.T, c=C, trans=0, lower=0, overwrite_c=1), 1))
        times["solve"].append(best_of(lambda: scipy.linalg.cho_solve(
            scipy.linalg.cho_factor(Q), Pt), 1))
        for dtype, (Xd, W) in data.items():
            times[dtype].append(best_of(lambda: Xd @ W.T, 1))
        for dtype, n_layers in configs:
            est = MSDA(n_layers=n_layers)
            t_fit = best_of(lambda: est.fit(data[dtype][0]), 1)
            times[dtype, n_layers].append(t_fit)
            floor = (n_layers * (times["syrk"][-1] + times["solve"][-1])
                     + (n_layers - 1) * times[dtype][-1])
            ratios[dtype, n_layers].append(t_fit / floor)
    rows = []
    for dtype, n_layers in configs:
        rows.append([np.dtype(dtype).name, n_layers,
                     f"{min(times[dtype, n_layers]):.3f}",
                     f"{min(times['syrk']):.3f}", f"{min(times['solve']):.3f}",
                     f"{min(times[dtype]):.3f}" if n_layers > 1 else "-",
                     f"{np.median(ratios[dtype, n_layers]):.2f}x"])
    print_table(f"Fit time, {n} x {d} (best of {repeats} interleaved rounds; "
                "s; the ratio is the median of the rounds)",
                ["dtype", "layers", "fit", "dsyrk X^T X", "Cholesky solve",
                 "output X W^T", "fit / (syrk + solve + output)"], rows)


# The feature learners compared: name -> factory(n_features, args). Adding a
# row (e.g. a DenoisingAutoencoder with reconstruction sampling) is one entry.
def feature_learners(args):
    learners = {
        "raw": None,
        "PCA(100)": lambda: PCA(100, random_state=0),
        "mSDA 1 layer": lambda: MSDA(n_layers=1),
        "mSDA 3 layers": lambda: MSDA(n_layers=3),
        f"DAE(500, {args.dae_epochs} epochs)": lambda: DenoisingAutoencoder(
            500, max_iter=args.dae_epochs, random_state=0),
    }
    return {k: v for k, v in learners.items()
            if not args.learners or k.split("(")[0].split(" ")[0]
            in args.learners}


def accuracy(name, data, args):
    X, y, Xt, yt = data
    X, y = X[:args.rows], y[:args.rows]
    rows = []
    for label, factory in feature_learners(args).items():
        t_fit = 0.0
        F, Ft = X, Xt
        if factory is not None:
            est = factory()
            t0 = time.perf_counter()
            est.fit(X)
            t_fit = time.perf_counter() - t0
            F, Ft = est.transform(X), est.transform(Xt)
        clf = LogisticRegression(max_iter=args.lr_iter)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(F, y)
        rows.append([label, F.shape[1], f"{t_fit:.2f}",
                     f"{clf.score(Ft, yt):.4f}"])
    print_table(f"{name}: {len(X)} training images, {len(Xt)} test images; "
                f"LogisticRegression(max_iter={args.lr_iter})",
                ["features", "width", "fit time (s)", "test accuracy"], rows)


def _peak_fit(est, X):
    tracemalloc.start()
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X)
    elapsed = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return elapsed, peak


# Sparse learners: name -> factory().
def sparse_learners(args):
    learners = {}
    for k in [None] + list(args.bow_k):
        name = "exact" if k is None else f"reconstruction_sampling={k}"
        learners[f"DAE({args.bow_dae_units}, {args.dae_epochs} epochs), "
                 f"{name}"] = (
            lambda k=k: DenoisingAutoencoder(
                args.bow_dae_units, reconstruction_sampling=k,
                max_iter=args.dae_epochs, batch_size=50,
                learning_rate_init=1e-2, random_state=0))
    for r in args.bow_r:
        for layers, features in [(1, "all"), (2, "all"), (2, "layers")]:
            learners[f"mSDA n_components={r}, {layers} layer(s), "
                     f"features={features}"] = (
                lambda r=r, layers=layers, features=features: MSDA(
                    n_layers=layers, n_components=r, features=features,
                    random_state=0))
    return learners


def bag_of_words(args):
    X, y = make_bag_of_words(args.bow_docs, args.bow_words, args.bow_topics,
                             args.bow_length)
    n_train = len(y) * 3 // 4
    Xtr, Xte, ytr, yte = X[:n_train], X[n_train:], y[:n_train], y[n_train:]
    # Labels are scarce, unlabelled text is not: the features are learned on
    # every document, the classifier sees 10 labelled ones per topic.
    lab = np.concatenate([np.flatnonzero(ytr == k)[:10]
                          for k in range(args.bow_topics)])
    rows = []

    def score(F, Ft):
        clf = LogisticRegression(max_iter=args.lr_iter)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(F[lab], ytr[lab])
        return f"{clf.score(Ft, yte):.4f}"

    rows.append(["raw", X.shape[1], "-", "-", score(Xtr, Xte)])
    for label, factory in sparse_learners(args).items():
        est = factory()
        elapsed, peak = _peak_fit(est, X)
        rows.append([label, est.get_feature_names_out().shape[0],
                     f"{elapsed:.2f}", f"{peak / 2**20:.0f}",
                     score(est.transform(Xtr), est.transform(Xte))])
    print_table(
        f"Bag of words: {X.shape[0]} documents x {X.shape[1]} words, "
        f"{X.nnz} non-zeros ({X.nnz / X.shape[0]:.0f} per document), "
        f"{args.bow_topics} topics; classifier trained on {len(lab)} labelled "
        "documents",
        ["features", "width", "fit time (s)", "peak memory of fit (MiB)",
         "test accuracy"], rows)
    print(f"(A d x d float64 matrix would take {X.shape[1]**2 * 8 / 2**30:.1f}"
          " GiB.)")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="small sizes everywhere: a smoke run")
    p.add_argument("--skip", nargs="*", default=[],
                   choices=["speed", "accuracy", "bow"])
    p.add_argument("--threads", type=int, default=None,
                   help="BLAS threads (default: the library's)")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="cpu: the process's CPU time in the speed part (use "
                   "with --threads 1)")
    p.add_argument("--datasets", nargs="*", default=["mnist", "fashion"],
                   choices=["mnist", "fashion"])
    p.add_argument("--rows", type=int, default=10000,
                   help="training images for the accuracy table")
    p.add_argument("--speed-rows", type=int, default=60000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--learners", nargs="*", default=[],
                   help="subset of raw PCA mSDA DAE (default: all)")
    p.add_argument("--dae-epochs", type=int, default=20)
    p.add_argument("--lr-iter", type=int, default=300)
    p.add_argument("--bow-docs", type=int, default=4000)
    p.add_argument("--bow-words", type=int, default=50000)
    p.add_argument("--bow-topics", type=int, default=20)
    p.add_argument("--bow-length", type=int, default=150)
    p.add_argument("--bow-r", type=int, nargs="*", default=[1000])
    p.add_argument("--bow-k", type=int, nargs="*", default=[100, 1000],
                   help="reconstruction_sampling values of the DAE rows")
    p.add_argument("--bow-dae-units", type=int, default=100)
    args = p.parse_args(argv)
    if args.quick:
        args.rows, args.speed_rows, args.repeats = 2000, 5000, 1
        args.dae_epochs, args.lr_iter = 2, 100
        args.bow_docs, args.bow_words, args.bow_r = 600, 50000, [200]
    limits = threadpool_limits(args.threads) if args.threads else None
    if args.clock == "cpu":
        CLOCK[0] = time.process_time
    print(environment())
    loaders = {"mnist": ("MNIST", load_mnist),
               "fashion": ("Fashion-MNIST", load_fashion_mnist)}
    if "speed" not in args.skip:
        speed(load_mnist()[0][:args.speed_rows], args.repeats)
    if "accuracy" not in args.skip:
        for key in args.datasets:
            name, loader = loaders[key]
            accuracy(name, loader(), args)
    if "bow" not in args.skip:
        bag_of_words(args)
    if limits is not None:
        limits.restore_original_limits()


if __name__ == "__main__":
    main()
