"""Benchmark: do TabularDenoisingAutoencoder features help a classifier on real tables?

For each table (Debian's R data packages, read through ``datasets.py``: numeric
and categorical columns, often with missing values) a stratified k-fold
cross-validation compares, with the same folds:

- ``raw``: the usual ColumnTransformer (imputed, standardised numeric columns,
  one-hot categorical columns) then the classifier;
- ``dae``: the classifier on the TabularDenoisingAutoencoder features of the
  raw DataFrame (no preprocessing by the user);
- ``raw+dae``: both, side by side (Jahrer's Porto Seguro recipe).

The classifiers are a logistic regression and HistGradientBoostingClassifier
(on the raw columns with its native categorical support). Reported: mean
accuracy and log-loss over the folds, and the mean fit time of a whole
pipeline (DAE training included).

    python benchmarks/tabular_features.py              # every table
    python benchmarks/tabular_features.py --quick      # two small tables, 3 folds
"""

import argparse
import os
import platform
import time
import warnings

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline, make_union
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

import skdae

import datasets

_CATEGORICAL = make_column_selector(dtype_include=["category", "object",
                                                   "string", "bool"])
_NUMERIC = make_column_selector(dtype_exclude=["category", "object",
                                               "string", "bool"])


def one_hot_columns():
    """The usual preprocessing of a table for a linear model."""
    return ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(), StandardScaler()), _NUMERIC),
        ("cat", make_pipeline(
            SimpleImputer(strategy="most_frequent"),
            OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
         _CATEGORICAL),
    ])


def ordinal_columns():
    """Categorical columns as codes first (for HGB's native support)."""
    return ColumnTransformer([
        ("cat", OrdinalEncoder(handle_unknown="use_encoded_value",
                               unknown_value=-1, encoded_missing_value=-1),
         _CATEGORICAL),
        ("num", "passthrough", _NUMERIC),
    ])


def dae(args):
    """The estimator at its defaults (but the seed, and --dae-epochs)."""
    epochs = {} if args.dae_epochs is None else {"max_iter": args.dae_epochs}
    return skdae.TabularDenoisingAutoencoder(random_state=args.seed, **epochs)


def pipelines(X, args):
    """Name -> unfitted pipeline, for the table X."""
    n_cat = len(_CATEGORICAL(X))

    def hgb():
        # The ordinal codes come first: their indices, whatever follows them.
        return HistGradientBoostingClassifier(
            categorical_features=list(range(n_cat)) if n_cat else None,
            random_state=args.seed)

    logistic = LogisticRegression(max_iter=2000)
    out = {
        "logistic raw": make_pipeline(one_hot_columns(), logistic),
        "logistic dae": make_pipeline(dae(args), logistic),
        "logistic raw+dae": make_pipeline(
            make_union(one_hot_columns(), dae(args)), logistic),
        "hgb raw": make_pipeline(ordinal_columns(), hgb()),
    }
    out["hgb raw+dae"] = make_pipeline(
        make_union(ordinal_columns(), dae(args)), hgb())
    return out


def evaluate(name, X, y, args):
    folds = StratifiedKFold(args.folds, shuffle=True, random_state=args.seed)
    rows = {}
    for label, pipe in pipelines(X, args).items():
        acc, loss, fit_time = [], [], []
        for train, test in folds.split(X, y):
            start = time.perf_counter()
            pipe.fit(X.iloc[train], y[train])
            fit_time.append(time.perf_counter() - start)
            proba = pipe.predict_proba(X.iloc[test])
            acc.append(accuracy_score(y[test], pipe.classes_[proba.argmax(1)]))
            loss.append(log_loss(y[test], proba, labels=pipe.classes_))
        rows[label] = (np.mean(acc), np.std(acc), np.mean(loss),
                       np.mean(fit_time))
        print(f"  {name:10s} {label:18s} accuracy {rows[label][0]:.4f} "
              f"(+-{rows[label][1]:.4f})  log-loss {rows[label][2]:.4f}  "
              f"fit {rows[label][3]:.2f} s", flush=True)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tables", nargs="+", default=list(datasets.TABLES),
                        choices=list(datasets.TABLES))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--dae-epochs", type=int, default=None,
                        help="max_iter of the DAE (default: its own)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true",
                        help="two small tables, 3 folds, 20 DAE epochs")
    args = parser.parse_args(argv)
    if args.quick:
        args.tables, args.folds, args.dae_epochs = ["titanic", "biopsy"], 3, 20
    print(f"skdae {skdae.__version__}, numpy {np.__version__}, pandas "
          f"{pd.__version__}, python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs; {args.folds}-fold stratified CV")
    results = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for name in args.tables:
            X, y = datasets.table(name)
            print(f"{name}: {X.shape[0]} rows, {X.shape[1]} columns "
                  f"({len(_CATEGORICAL(X))} categorical), "
                  f"{int(X.isna().sum().sum())} missing entries, "
                  f"{len(np.unique(y))} classes", flush=True)
            results[name] = evaluate(name, X, y, args)
    labels = list(next(iter(results.values())))
    print("\n| table | " + " | ".join(labels) + " |")
    print("|---" * (len(labels) + 1) + "|")
    for name, rows in results.items():
        cells = [f"{rows[k][0]:.3f} ({rows[k][3]:.1f} s)" for k in labels]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("\nCells: mean accuracy (mean fit time of the pipeline).")


if __name__ == "__main__":
    main()
