"""Benchmark: epoch time of the deep tabular DAE engine against PyTorch.

Workload (defaults): a synthetic table of 20000 rows, 20 numeric columns and
10 categorical columns of 8 categories (100 inputs), an encoder
(256, 256, 256) with a mirrored decoder, ReLU, swap noise 0.15, squared error
on the numeric columns and softmax cross-entropy on each categorical one,
Adam, batch 256, float32. Three trainers run interleaved epochs:

- ``skdae``: ``skdae._network.forward_backward`` driven by a minimal loop
  (permutation, minibatches, ``AdamOptimizer``): the engine without the
  estimator around it;
- ``estimator``: ``skdae.TabularDenoisingAutoencoder`` itself, one
  ``partial_fit`` epoch on the pandas DataFrame of the same table (its
  encoding, the fit transaction and ``_training.run_epochs`` included). It
  also feeds one missing indicator per column (30 more inputs);
- ``torch``: an idiomatic PyTorch tabular DAE of the same architecture
  (``nn.Sequential``, swap noise by ``torch.randint`` row indices over the
  training table, ``mse_loss`` + one ``cross_entropy`` per categorical,
  ``torch.optim.Adam``);
- ``BLAS floor``: the matrix products of one training step alone (forward,
  backward and weight gradients of every layer) on the same shapes.

Run ``python benchmarks/bench_tabular.py --quick`` for a smoke run. Figures
need a quiet machine: compare ratios within one run only.
"""

import argparse
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_info, threadpool_limits

try:
    import torch
except ImportError:  # the PyTorch rows are skipped
    torch = None

from report import cpu_model, paired_ratio, settle

import skdae
from skdae import _kernels as K
from skdae._network import Corruption, Head, Workspace, forward_backward
from skdae._optimizers import AdamOptimizer, RowUpdates
from skdae._parallel import BlockRunner


def make_table(args, dtype):
    """Encoded inputs, targets and column groups of a synthetic table.

    With ``args.missing > 0``, that fraction of the entries is missing
    (completely at random): masked in the inputs, with one indicator input
    per column after the others, and weighing 0 as targets.
    """
    rng = np.random.RandomState(0)
    n, p, q, k = args.rows, args.numeric, args.categorical, args.categories
    latent = rng.normal(size=(n, 4))
    num = latent @ rng.normal(size=(4, p)) + 0.3 * rng.normal(size=(n, p))
    cats = np.argmax(latent @ rng.normal(size=(4, q * k)).reshape(4, q, k).
                     transpose(1, 0, 2) + rng.gumbel(size=(q, n, k)), axis=2).T
    num = (num - num.mean(0)) / num.std(0)
    X = np.zeros((n, p + q * k), dtype=dtype)
    X[:, :p] = num
    for c in range(q):
        X[np.arange(n), p + c * k + cats[:, c]] = 1.0
    targets = np.column_stack([num, cats]).astype(dtype)
    widths = [1] * p + [k] * q
    starts = np.cumsum([0] + widths)[:-1]
    stops = starts + np.asarray(widths)
    missing = rng.uniform(size=(n, p + q)) < args.missing
    if missing.any():
        for c in range(p + q):
            X[missing[:, c], starts[c]:stops[c]] = 0.0
        X = np.hstack([X, missing.astype(dtype)])
        targets[missing] = 0.0
    return (X, targets, cats, widths, starts, stops,
            missing if missing.any() else None)


def layer_sizes(table, args):
    """Inputs, the mirrored hidden layers, and the head's output units."""
    X, widths = table[0], table[3]
    return [X.shape[1], *args.hidden, *args.hidden[-2::-1], sum(widths)]


class SkdaeTrainer:
    name = "skdae"

    def __init__(self, table, args, dtype):
        X, targets, _, widths, starts, stops, missing = table
        self.X, self.targets = X, targets
        self.weights = None if missing is None else (~missing).astype(dtype)
        sizes = layer_sizes(table, args)
        rng = np.random.RandomState(0)
        self.coefs = [(rng.uniform(-1, 1, size=(a, b)) * np.sqrt(6 / (a + b))
                       ).astype(dtype) for a, b in zip(sizes[:-1], sizes[1:])]
        self.intercepts = [np.zeros(b, dtype=dtype) for b in sizes[1:]]
        self.acts = [K.ACTIVATION_CODES["relu"]] * (len(self.coefs) - 1)
        kinds = ["squared_error"] * args.numeric + ["softmax"] * args.categorical
        self.head = Head(kinds, widths)
        n_columns = args.numeric + args.categorical
        indicators = (None if missing is None
                      else sum(widths) + np.arange(n_columns))
        self.noise = Corruption(args.noise, args.level, X.shape[1], starts,
                                stops, indicators,
                                uncorrupted_weight=args.uncorrupted_weight,
                                input_missing=missing)
        self.batch = args.batch
        self.threads = args.threads_now
        self.ws = Workspace(self.batch, self.coefs, self.head,
                            self.noise.n_groups, True, None,
                            args.rows_per_block)
        self.params = self.coefs + self.intercepts
        self.opt = AdamOptimizer(self.params, args.lr)
        self.rng = np.random.RandomState(1)

    def close(self):
        pass

    def epoch(self):
        # The runner limits BLAS to one thread while it is open: open it per
        # epoch, as a fit does, so that the other trainers see the limit of
        # the run.
        with BlockRunner(self.threads) as self.ws.runner:
            self._epoch()

    def _epoch(self):
        n = self.X.shape[0]
        perm = self.rng.permutation(n)
        seeds = self.rng.randint(2**31, size=n // self.batch + 1)
        n_coefs = len(self.coefs)
        updates = RowUpdates(self.opt, self.coefs, self.ws.grad_coefs,
                             range(n_coefs), 0.0,
                             range(n_coefs, 2 * n_coefs))
        for b, start in enumerate(range(0, n - self.batch + 1, self.batch)):
            rows = perm[start:start + self.batch]
            # As the estimators' step: each block of weight rows updated
            # with its gradient (compiled), then the biases; on one thread
            # the whole step is one compiled call.
            updates.start(self.batch)
            forward_backward(self.coefs, self.intercepts, self.acts, self.head,
                             self.X, rows, self.targets, self.weights,
                             self.noise, int(seeds[b]), self.ws, updates,
                             update_biases=True)


class EstimatorTrainer:
    name = "estimator"

    def __init__(self, table, args, dtype):
        import pandas as pd

        X, targets, cats, _, _, _, missing = table
        columns = {f"x{j}": X[:, j].astype(np.float64)
                   for j in range(args.numeric)}
        for c in range(args.categorical):
            columns[f"c{c}"] = pd.Categorical(cats[:, c],
                                              categories=range(args.categories))
        self.frame = pd.DataFrame(columns)
        if args.preset == "imputer":
            # One epoch per fit of the imputer (no partial_fit): its column
            # encoding is included; no early stopping, to train on all rows.
            self.frame = self.frame.mask(missing)
            self.model = skdae.DenoisingAutoencoderImputer(
                hidden_layer_sizes=tuple(args.hidden), max_iter=1,
                corruption_level=args.level, early_stopping=False,
                learning_rate_init=args.lr, batch_size=args.batch,
                random_state=0)
        else:
            self.model = skdae.TabularDenoisingAutoencoder(
                hidden_layer_sizes=tuple(args.hidden),
                corruption_level=args.level, learning_rate_init=args.lr,
                batch_size=args.batch, random_state=0)

    def close(self):
        pass

    def epoch(self):
        if isinstance(self.model, skdae.DenoisingAutoencoderImputer):
            self.model.fit(self.frame)
        else:
            self.model.partial_fit(self.frame)


class TorchTrainer:
    name = "torch"

    def __init__(self, table, args, dtype):
        X, _, cats, _, _, _, _ = table
        self.dt = torch.float32 if dtype == np.float32 else torch.float64
        torch.manual_seed(0)
        self.p, self.k, self.q = args.numeric, args.categories, args.categorical
        self.num = torch.from_numpy(X[:, :self.p].copy())
        self.cat = torch.from_numpy(cats.astype(np.int64))
        self.level, self.batch = args.level, args.batch
        sizes = [X.shape[1], *args.hidden, *args.hidden[-2::-1], X.shape[1]]
        layers = []
        for a, b in zip(sizes[:-2], sizes[1:-1]):
            layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
        layers.append(torch.nn.Linear(sizes[-2], sizes[-1]))
        self.model = torch.nn.Sequential(*layers).to(self.dt)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=args.lr)

    def close(self):
        pass

    def swap(self, num, cat):
        """Swap noise: each entry from the same column of a random row."""
        n = self.num.shape[0]
        m = num.shape[0]
        mask_n = torch.rand(m, self.p) < self.level
        src = torch.randint(n, (m, self.p))
        num = torch.where(mask_n, self.num.gather(0, src), num)
        mask_c = torch.rand(m, self.q) < self.level
        src = torch.randint(n, (m, self.q))
        cat = torch.where(mask_c, self.cat.gather(0, src), cat)
        onehot = torch.nn.functional.one_hot(cat, self.k).to(self.dt)
        return torch.cat([num, onehot.reshape(m, -1)], dim=1)

    def epoch(self):
        n = self.num.shape[0]
        perm = torch.randperm(n)
        for start in range(0, n - self.batch + 1, self.batch):
            idx = perm[start:start + self.batch]
            num, cat = self.num[idx], self.cat[idx]
            out = self.model(self.swap(num, cat))
            loss = 0.5 * torch.nn.functional.mse_loss(
                out[:, :self.p], num, reduction="sum")
            logits = out[:, self.p:].reshape(-1, self.q, self.k)
            loss = loss + torch.nn.functional.cross_entropy(
                logits.reshape(-1, self.k), cat.reshape(-1), reduction="sum")
            self.opt.zero_grad()
            (loss / self.batch).backward()
            self.opt.step()


class BlasFloor:
    """The matrix products of one step, on the same shapes (full batch)."""

    name = "BLAS floor"

    def __init__(self, table, args, dtype):
        X = table[0]
        sizes = layer_sizes(table, args)
        rng = np.random.RandomState(0)
        self.W = [rng.normal(size=(a, b)).astype(dtype)
                  for a, b in zip(sizes[:-1], sizes[1:])]
        self.H = [rng.normal(size=(args.batch, s)).astype(dtype) for s in sizes]
        self.G = [np.empty_like(W) for W in self.W]
        self.steps = X.shape[0] // args.batch

    def close(self):
        pass

    def epoch(self):
        W, H, G = self.W, self.H, self.G
        for _ in range(self.steps):
            for k in range(len(W)):
                np.matmul(H[k], W[k], out=H[k + 1])
            for k in range(len(W) - 1, -1, -1):
                np.matmul(H[k].T, H[k + 1], out=G[k])
                if k:
                    np.matmul(H[k + 1], W[k].T, out=H[k])


def run(args, threads, dtype):
    # CPU time of the process suits one thread on a shared machine (time
    # spent descheduled is not counted); it sums the threads' time otherwise.
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    table = make_table(args, dtype)
    args.threads_now = threads
    classes = [SkdaeTrainer, BlasFloor]
    if dtype == np.float32:  # the estimator computes in float32 only
        classes.insert(1, EstimatorTrainer)
    # The PyTorch model has no missing indicators (nor the imputer preset).
    if torch is not None and not args.no_torch and args.missing == 0:
        classes.insert(1, TorchTrainer)
    with threadpool_limits(threads), warnings.catch_warnings():
        # The imputer's one-epoch fits warn that they did not converge.
        warnings.simplefilter("ignore", ConvergenceWarning)
        if torch is not None:
            torch.set_num_threads(threads)
        trainers = [cls(table, args, dtype) for cls in classes]
        times = {t.name: [] for t in trainers}
        for round_ in range(args.epochs + 1):
            for t in trainers:
                settle()
                start = clock()
                t.epoch()
                if round_:  # the first round is a warm-up
                    times[t.name].append(clock() - start)
        for t in trainers:
            t.close()
    return times, table[0].shape[0] // args.batch


PRESETS = {
    # DenoisingAutoencoderImputer's defaults on a table of letter's shape
    # (20000 x 16 numeric, 20% missing): 32 inputs with the indicators,
    # hidden "auto" = (128, 128) mirrored, masking 0.25 with emphasis 0.5,
    # Adam at 3e-3, batch "auto" = 256. Steps this small run as one block
    # on one thread (``_network.SERIAL_STEP_WORK``), also at --threads 2.
    "imputer": dict(rows=20000, numeric=16, categorical=0, hidden=[128, 128],
                    batch=256, level=0.25, lr=3e-3, noise="masking",
                    uncorrupted_weight=0.5, missing=0.2),
}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=20000)
    p.add_argument("--numeric", type=int, default=20)
    p.add_argument("--categorical", type=int, default=10)
    p.add_argument("--categories", type=int, default=8)
    p.add_argument("--hidden", type=int, nargs="+", default=[256, 256, 256])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--level", type=float, default=0.15)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--dtypes", nargs="+", default=["float32"])
    p.add_argument("--rows-per-block", type=int, default=None,
                   help="row block of the skdae engine's forward pass "
                   "(default: half the batch, at least 64)")
    p.add_argument("--noise", default="swap", choices=["swap", "masking"])
    p.add_argument("--uncorrupted-weight", type=float, default=1.0)
    p.add_argument("--missing", type=float, default=0.0,
                   help="fraction of missing entries (with indicators)")
    p.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="imputer: DenoisingAutoencoderImputer's default "
                   "configuration on a 20000 x 16 table (PyTorch skipped)")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="cpu: the process's CPU time (for --threads 1 on a "
                   "loaded machine)")
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 2000 rows, hidden (64, 64), 1 epoch")
    args = p.parse_args(argv)
    if args.preset:
        for key, value in PRESETS[args.preset].items():
            setattr(args, key, value)
    if args.quick:
        args.rows, args.hidden, args.epochs = 2000, [64, 64], 1
    blas = [f"{i['internal_api']} {i.get('architecture')}"
            for i in threadpool_info() if i["user_api"] == "blas"]
    print(f"CPU {cpu_model()}; BLAS {blas}; "
          f"torch {torch.__version__ if torch is not None else '-'}")
    print(f"{args.rows} rows, {args.numeric} numeric + {args.categorical} x "
          f"{args.categories} categorical, hidden {args.hidden} mirrored, "
          f"batch {args.batch}, {args.noise} {args.level}, "
          f"{args.missing:.0%} missing")
    print(f"{'dtype':8} {'threads':>7} {'trainer':>11} {'s/epoch':>8} "
          f"{'us/step':>8} {'vs skdae':>8} {'vs floor':>8}")
    for dtype in args.dtypes:
        for threads in args.threads:
            times, steps = run(args, threads, np.dtype(dtype).type)
            # Ratios: the median over rounds of the ratio within a round.
            for name, t in times.items():
                median = np.median(t)
                print(f"{dtype:8} {threads:7d} {name:>11} {median:8.3f} "
                      f"{1e6 * median / steps:8.0f} "
                      f"{paired_ratio(t, times['skdae']):8.2f} "
                      f"{paired_ratio(t, times['BLAS floor']):8.2f}")


if __name__ == "__main__":
    main()
