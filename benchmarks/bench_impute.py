"""Benchmark: imputation quality and time against scikit-learn's imputers.

Each data set is split into training and test rows (70 / 30, stratified on
the target when it is a class). Entries are removed from the whole table by
a mask drawn reproducibly (``--seed``, the data set's and the mask's names):

- ``mcar20`` / ``mcar50``: every observed entry is removed with probability
  0.2 / 0.5, missing completely at random;
- ``mnar``: missing not at random, the largest values of each column more
  often missing: an entry is removed with probability ``0.5 * r``, ``r`` its
  rank in the column scaled to [0, 1] (ties share their mean rank), so 25% of
  the entries on average, none of the smallest and half of the largest. A
  categorical column is ranked by its category codes (the later categories
  in R's or pandas' order are more often missing).

Entries missing in the data itself (R's NA) stay missing and are never
scored. Every imputer is fitted on the training rows, with their missing
entries, and imputes the training and the test rows
(``fit_transform(train)``, then ``transform(test)``: the time reported is
that of both). Scores count the removed entries only:

- ``RMSE``: root mean squared error over the numeric columns in standardised
  units (each column divided by its standard deviation in the data before
  removal; constant columns are left out);
- ``cat acc``: the fraction of removed categorical entries imputed with their
  true category;
- ``downstream``: a classifier (StandardScaler on the numeric columns,
  one-hot encoding of the categorical ones, LogisticRegression) trained on
  the imputed training table and tested on the imputed test table, accuracy;
  for a numeric target (diabetes) a Ridge regression and its R^2. The row
  ``complete`` is the same model on the table before removal (its own
  missing entries, if any, filled by SimpleImputer).

The imputers (a dictionary in :func:`imputers`):

- ``mean``: SimpleImputer, the mean for numeric and the most frequent
  category for categorical columns;
- ``knn``: KNNImputer(n_neighbors=5);
- ``iterative``: IterativeImputer (BayesianRidge, max_iter=10). On tables
  wider than ``--wide`` columns (Fashion-MNIST's 784 pixels) it would fit
  hundreds of 783-feature regressions per round: it is capped there at
  ``n_nearest_features=50, max_iter=5`` and the row says so;
- ``dae``: ``skdae.DenoisingAutoencoderImputer()`` with its defaults and
  ``random_state=--seed``, on a DataFrame whose categorical columns are
  pandas categoricals (its native input); the row is skipped, with the
  reason printed, while skdae has no such estimator.

KNNImputer and IterativeImputer see what a scikit-learn user would give
them: categorical columns ordinal-encoded (category codes 0 .. k-1), every
column standardised with the mean and standard deviation of its observed
training entries; their imputations are mapped back, and a categorical
column's imputed code is rounded to the nearest category (clipped to
0 .. k-1).

``python benchmarks/bench_impute.py --quick`` is a smoke run (at most 400
rows per data set). Times need a quiet machine.
"""

import argparse
import sys
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
from report import cpu_model
from scipy.stats import rankdata
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_wine
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_info

import datasets

# The skdae of this checkout, whatever is installed.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


class Table:
    """A data set encoded for the benchmark.

    ``values`` is float64 (n_samples, n_columns): numeric values and the
    category codes of the categorical columns, NaN where missing;
    ``categories[j]`` is the list of categories of column ``j`` (None for a
    numeric column); ``y`` the target, ``task`` "classification" or
    "regression".
    """

    def __init__(self, name, values, columns, categories, y, task):
        self.name, self.values, self.columns = name, values, list(columns)
        self.categories, self.y, self.task = categories, y, task
        self.is_cat = np.array([c is not None for c in categories])

    def frame(self, values):
        """``values`` as a DataFrame with pandas categoricals (the DAE input)."""
        data = {}
        for j, column in enumerate(self.columns):
            if self.categories[j] is None:
                data[column] = values[:, j]
            else:
                codes = np.where(np.isnan(values[:, j]), -1, values[:, j])
                data[column] = pd.Categorical.from_codes(
                    codes.astype(int), categories=self.categories[j])
        return pd.DataFrame(data)

    def encode(self, frame):
        """A DataFrame with this table's columns back to ``values`` form."""
        out = np.empty((len(frame), len(self.columns)))
        for j, column in enumerate(self.columns):
            if self.categories[j] is None:
                out[:, j] = np.asarray(frame[column], dtype=float)
            else:
                codes = pd.Categorical(frame[column],
                                       categories=self.categories[j]).codes
                out[:, j] = np.where(codes < 0, np.nan, codes)
        return out


def from_frame(name, frame, y, task="classification"):
    columns, categories, values = [], [], []
    for column in frame.columns:
        series = frame[column]
        if isinstance(series.dtype, pd.CategoricalDtype) or \
                series.dtype == object or pd.api.types.is_string_dtype(series):
            cat = pd.Categorical(series)
            categories.append(list(cat.categories))
            values.append(np.where(cat.codes < 0, np.nan, cat.codes))
        else:
            categories.append(None)
            values.append(np.asarray(series, dtype=float))
        columns.append(str(column))
    return Table(name, np.column_stack(values).astype(float), columns,
                 categories, np.asarray(y), task)


def _sklearn(loader, task="classification"):
    def load(args):
        X, y = loader(return_X_y=True)
        return X, y, task
    return load


def _fashion(args):
    X, y = datasets.fashion_mnist()[0]
    rows = np.random.RandomState(0).permutation(len(X))[:args.fashion_rows]
    return X[rows].astype(float), y[rows], "classification"


LOADERS = {
    "wine": _sklearn(load_wine),
    "diabetes": _sklearn(load_diabetes, "regression"),
    "wdbc": _sklearn(load_breast_cancer),
    "digits": _sklearn(load_digits),
    "fashion": _fashion,
    "vehicle": "vehicle",
    "satellite": "satellite",
    "letter": "letter",
    "breastcancer": "breastcancer",
    "housevotes": "housevotes",
    "soybean": "soybean",
    "chile": "chile",
}


def load(name, args):
    loader = LOADERS[name]
    if isinstance(loader, str):  # a table of datasets.TABLES
        frame, y = datasets.table(loader)
        table = from_frame(name, frame, y)
    else:
        X, y, task = loader(args)
        table = Table(name, np.asarray(X, dtype=float),
                      [f"x{j}" for j in range(X.shape[1])],
                      [None] * X.shape[1], y, task)
    if args.max_rows and len(table.values) > args.max_rows:
        rows = np.random.RandomState(0).permutation(
            len(table.values))[:args.max_rows]
        table.values, table.y = table.values[rows], table.y[rows]
    return table


MASKS = {"mcar20": ("mcar", 0.2), "mcar50": ("mcar", 0.5),
         "mnar": ("mnar", 0.25)}
MASK_TITLES = {
    "mcar20": "missing completely at random, 20% of the entries",
    "mcar50": "missing completely at random, 50% of the entries",
    "mnar": "missing not at random, the largest values of each column more "
            "often (25% of the entries on average)",
}


def draw_mask(values, mask, seed, name):
    """Boolean mask of the observed entries to remove (reproducible)."""
    kind, rate = MASKS[mask]
    rng = np.random.default_rng([seed, zlib.crc32(name.encode()),
                                 zlib.crc32(mask.encode())])
    observed = ~np.isnan(values)
    u = rng.random(values.shape)
    if kind == "mcar":
        return observed & (u < rate)
    p = np.zeros(values.shape)
    for j in range(values.shape[1]):
        seen = observed[:, j]
        if seen.sum() > 1:
            r = rankdata(values[seen, j]) - 1
            p[seen, j] = 2 * rate * r / (seen.sum() - 1)
    return observed & (u < p)


class Standardised:
    """An imputer applied to ordinal-encoded, standardised values.

    Mean and standard deviation come from the observed training entries;
    imputed category codes are rounded to the nearest category.
    """

    def __init__(self, imputer, table):
        self.imputer, self.table = imputer, table

    def fit_transform(self, X):
        self.mean_ = np.nanmean(X, axis=0)
        self.scale_ = np.nanstd(X, axis=0)
        self.mean_[np.isnan(self.mean_)] = 0.0
        self.scale_[~(self.scale_ > 0)] = 1.0
        return self._back(self.imputer.fit_transform(self._scale(X)))

    def transform(self, X):
        return self._back(self.imputer.transform(self._scale(X)))

    def _scale(self, X):
        return (X - self.mean_) / self.scale_

    def _back(self, Z):
        X = Z * self.scale_ + self.mean_
        for j in np.flatnonzero(self.table.is_cat):
            k = len(self.table.categories[j])
            X[:, j] = np.clip(np.round(X[:, j]), 0, k - 1)
        return X


class MeanMode:
    """SimpleImputer: the mean of numeric, the mode of categorical columns."""

    def __init__(self, table):
        self.table = table

    def fit_transform(self, X):
        self.parts_ = []
        for strategy, cols in (("mean", ~self.table.is_cat),
                               ("most_frequent", self.table.is_cat)):
            if cols.any():
                imputer = SimpleImputer(strategy=strategy,
                                        keep_empty_features=True)
                imputer.fit(X[:, cols])
                self.parts_.append((cols, imputer))
        return self.transform(X)

    def transform(self, X):
        out = np.empty_like(X)
        for cols, imputer in self.parts_:
            out[:, cols] = imputer.transform(X[:, cols])
        return out


class OnFrame:
    """An imputer of DataFrames with pandas categoricals (skdae's input)."""

    def __init__(self, imputer, table):
        self.imputer, self.table = imputer, table

    def fit_transform(self, X):
        self.imputer.set_output(transform="pandas")
        return self.table.encode(
            self.imputer.fit_transform(self.table.frame(X)))

    def transform(self, X):
        return self.table.encode(self.imputer.transform(self.table.frame(X)))


def imputers(table, args):
    """name -> (imputer with fit_transform / transform, note) or a reason."""
    out = {"mean": (MeanMode(table), "")}
    out["knn"] = (Standardised(KNNImputer(n_neighbors=5,
                                          keep_empty_features=True), table),
                  "")
    if not args.no_iterative:
        width = table.values.shape[1]
        cap = {} if width <= args.wide else {"n_nearest_features": 50,
                                              "max_iter": 5}
        note = ", ".join(f"{k}={v}" for k, v in cap.items())
        out["iterative"] = (Standardised(IterativeImputer(
            random_state=args.seed, keep_empty_features=True, **cap), table),
            note and f"capped ({note}): {width} columns")
    try:
        from skdae._impute import DenoisingAutoencoderImputer
    except ImportError:
        out["dae"] = "skdae has no DenoisingAutoencoderImputer yet"
    else:
        out["dae"] = (OnFrame(DenoisingAutoencoderImputer(
            random_state=args.seed), table), "")
    return out


def errors(table, imputed, truth, removed):
    """(RMSE in standardised units, categorical accuracy) on ``removed``."""
    std = np.nanstd(table.values, axis=0)
    num = removed & ~table.is_cat & (std > 0)
    cat = removed & table.is_cat
    rmse = acc = np.nan
    if num.any():
        z = (imputed - truth) / np.where(std > 0, std, 1.0)
        rmse = float(np.sqrt(np.mean(z[num] ** 2)))
    if cat.any():
        acc = float(np.mean(imputed[cat] == truth[cat]))
    return rmse, acc


def downstream(table, X_train, y_train, X_test, y_test):
    num = np.flatnonzero(~table.is_cat)
    cat = np.flatnonzero(table.is_cat)
    encode = ColumnTransformer(
        [("num", StandardScaler(), num),
         ("cat", OneHotEncoder(handle_unknown="ignore"), cat)])
    model = LogisticRegression(max_iter=500) \
        if table.task == "classification" else Ridge()
    pipe = make_pipeline(
        SimpleImputer(strategy="most_frequent", keep_empty_features=True),
        encode, model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe.fit(X_train, y_train)
    return float(pipe.score(X_test, y_test))


def split(table, seed):
    stratify = table.y if table.task == "classification" else None
    if stratify is not None and np.unique(stratify, return_counts=True)[1].min() < 2:
        stratify = None
    return train_test_split(np.arange(len(table.values)), test_size=0.3,
                            random_state=seed, stratify=stratify)


def run(table, mask, args, notes):
    """The rows of one data set and mask: dicts of the table's columns."""
    removed = draw_mask(table.values, mask, args.seed, table.name)
    masked = np.where(removed, np.nan, table.values)
    train, test = split(table, args.seed)
    rows = [{"imputer": "complete", "downstream": downstream(
        table, table.values[train], table.y[train], table.values[test],
        table.y[test])}]
    for name, entry in imputers(table, args).items():
        if isinstance(entry, str):
            notes.setdefault(f"{name}: skipped: {entry}", []).append(
                table.name)
            continue
        imputer, note = entry
        if note:
            notes.setdefault(f"{name}: {note}", []).append(table.name)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # IterativeImputer's convergence
            imp_train = imputer.fit_transform(masked[train])
            imp_test = imputer.transform(masked[test])
        seconds = time.perf_counter() - start
        row = {"imputer": name + (" (capped)" if note else ""),
               "seconds": seconds}
        row["rmse train"], _ = errors(table, imp_train, table.values[train],
                                      removed[train])
        row["rmse test"], row["cat acc"] = errors(
            table, imp_test, table.values[test], removed[test])
        row["downstream"] = downstream(table, imp_train, table.y[train],
                                       imp_test, table.y[test])
        rows.append(row)
    return rows, removed


def _cell(value, best=False, digits=3):
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    text = f"{value:.{digits}f}"
    return f"**{text}**" if best else text


def print_table(mask, results, notes):
    print(f"\n### {mask}: {MASK_TITLES[mask]}\n")
    print("| data | rows x columns (categorical) | removed | imputer | "
          "RMSE train | RMSE test | cat acc test | downstream | seconds |")
    print("|---|---|---|---|---|---|---|---|---|")
    for table, rows, removed in results:
        n, d = table.values.shape
        scored = [r for r in rows if "seconds" in r]
        best_rmse = min((r["rmse test"] for r in scored), default=np.nan)
        best_acc = max((r["cat acc"] for r in scored), default=np.nan)
        for k, r in enumerate(rows):
            head = (f"{table.name} | {n} x {d} ({int(table.is_cat.sum())}) | "
                    f"{removed.mean():.0%}") if k == 0 else " | | "
            print(f"| {head} | {r['imputer']} | "
                  f"{_cell(r.get('rmse train'))} | "
                  f"{_cell(r.get('rmse test'), r.get('rmse test') == best_rmse)}"
                  f" | {_cell(r.get('cat acc'), r.get('cat acc') == best_acc)}"
                  f" | {_cell(r['downstream'])}"
                  f"{' (R2)' if table.task == 'regression' else ''}"
                  f" | {_cell(r.get('seconds'), digits=2)} |")
    for note, names in notes.items():
        print(f"\n- {note} ({', '.join(names)})")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", nargs="+", default=list(LOADERS),
                   choices=list(LOADERS))
    p.add_argument("--masks", nargs="+", default=list(MASKS),
                   choices=list(MASKS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-rows", type=int, default=None,
                   help="a random subset of at most this many rows")
    p.add_argument("--fashion-rows", type=int, default=5000,
                   help="Fashion-MNIST training images used (default 5000)")
    p.add_argument("--wide", type=int, default=100,
                   help="IterativeImputer is capped above this many columns")
    p.add_argument("--no-iterative", action="store_true")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: at most 400 rows per data set")
    args = p.parse_args(argv)
    if args.quick:
        args.max_rows = min(args.max_rows or 400, 400)
        args.fashion_rows = min(args.fashion_rows, 400)
    blas = [f"{i['internal_api']} {i.get('version')} {i.get('architecture')}"
            f" ({i.get('num_threads')} threads)"
            for i in threadpool_info() if i["user_api"] == "blas"]
    print(f"CPU {cpu_model()}; BLAS {blas}; seed {args.seed}")
    tables = [load(name, args) for name in args.datasets]
    for mask in args.masks:
        results, notes = [], {}
        for table in tables:
            rows, removed = run(table, mask, args, notes)
            results.append((table, rows, removed))
        print_table(mask, results, notes)


if __name__ == "__main__":
    main()
