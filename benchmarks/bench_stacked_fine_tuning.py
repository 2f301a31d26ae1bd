"""What ``StackedDenoisingAutoencoder(fine_tune=True)`` buys on the digits.

For each stack, three fits from the same ``random_state`` (so the same greedy
pretraining where the budgets agree): greedy with ``--epochs`` epochs per
layer, greedy with twice as many, and greedy followed by ``--epochs``
fine-tuning epochs. Prints the held-out reconstruction MSE per pixel,
``score`` (minus the mean reconstruction loss), the accuracy of a logistic
regression on the top codes, and the fit time (indicative only: measure on
a quiet machine)::

    python benchmarks/bench_stacked_fine_tuning.py            # about 2 minutes
    python benchmarks/bench_stacked_fine_tuning.py --quick    # smoke run
"""

import argparse
import time
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from skdae import StackedDenoisingAutoencoder

STACKS = [(32, 8), (64, 32, 8), (128, 64, 32, 8), (256, 128)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--quick", action="store_true",
                        help="2 epochs, the first stack only")
    args = parser.parse_args()
    epochs = 2 if args.quick else args.epochs
    stacks = STACKS[:1] if args.quick else STACKS
    warnings.simplefilter("ignore", ConvergenceWarning)
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.3, random_state=0, stratify=y)
    print(f"digits: {X_train.shape[0]} training, {X_test.shape[0]} held-out "
          f"images; masking 0.2, Adam at 3e-3, {epochs} epochs per phase")
    print(f"{'stack':<16} {'training':<28} {'test MSE':>8} {'score':>7} "
          f"{'accuracy':>8} {'time':>7}")
    variants = [(f"greedy, {epochs} epochs/layer", epochs, False),
                (f"greedy, {2 * epochs} epochs/layer", 2 * epochs, False),
                (f"greedy {epochs}, fine-tuned {epochs}", epochs, True)]
    for sizes in stacks:
        for name, max_iter, fine_tune in variants:
            start = time.perf_counter()
            stack = StackedDenoisingAutoencoder(
                sizes, corruption_level=0.2, learning_rate_init=3e-3,
                max_iter=max_iter, fine_tune=fine_tune,
                fine_tune_max_iter=epochs, random_state=0).fit(X_train)
            seconds = time.perf_counter() - start
            mse = np.mean((stack.inverse_transform(stack.transform(X_test))
                           - X_test) ** 2)
            codes = LogisticRegression(max_iter=2000).fit(
                stack.transform(X_train), y_train)
            accuracy = codes.score(stack.transform(X_test), y_test)
            print(f"{'64-' + '-'.join(map(str, sizes)):<16} {name:<28} "
                  f"{mse:8.4f} {stack.score(X_test):7.2f} {accuracy:8.3f} "
                  f"{seconds:6.1f}s", flush=True)


if __name__ == "__main__":
    main()
