"""``python -m skdae``: a short demonstration on scikit-learn's digits.

Trains a denoising autoencoder with a progress line, then prints how well a
logistic regression does on raw pixels and on the learned features, and how
far masked test digits are from the clean ones before and after the model
reconstructs them.
"""

import time
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline

from skdae import DenoisingAutoencoder


def main():
    X, y = load_digits(return_X_y=True)
    X = X / 16.0  # pixels in [0, 1]: the cross-entropy loss is chosen
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, random_state=0, stratify=y)

    print(f"Digits: {X_train.shape[0]} training and {X_test.shape[0]} test "
          f"images of {X.shape[1]} pixels.\n")
    dae = DenoisingAutoencoder(
        n_components=256, corruption="masking", corruption_level=0.3,
        learning_rate_init=3e-3, max_iter=100, random_state=0, verbose=1)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        dae.fit(X_train)
    fit_time = time.perf_counter() - start

    # Accuracy over 5 folds of all digits: one split of 450 images is too
    # noisy to compare two feature sets that differ by a few images.
    clf = LogisticRegression(max_iter=5000)
    raw_acc = cross_val_score(clf, X, y, cv=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        dae_acc = cross_val_score(
            make_pipeline(dae.set_params(verbose=0), clf), X, y, cv=5)

    rng = np.random.RandomState(1)
    masked = np.where(rng.uniform(size=X_test.shape) < 0.3, 0.0, X_test)
    reconstructed = dae.inverse_transform(dae.transform(masked))
    mse_masked = np.mean((masked - X_test) ** 2)
    mse_reconstructed = np.mean((reconstructed - X_test) ** 2)

    print(f"\nTrained {dae.n_iter_} epochs in {fit_time:.1f} s "
          f"(loss_={dae.loss_!r}).\n")
    rows = [
        ("LogisticRegression 5-fold accuracy, raw pixels",
         f"{raw_acc.mean():.4f} +- {raw_acc.std():.4f}"),
        ("LogisticRegression 5-fold accuracy, DAE features",
         f"{dae_acc.mean():.4f} +- {dae_acc.std():.4f}"),
        ("MSE to clean, 30%-masked test digits", f"{mse_masked:.4f}"),
        ("MSE to clean, after reconstruction", f"{mse_reconstructed:.4f}"),
        ("  ratio (lower is better)", f"{mse_reconstructed / mse_masked:.3f}"),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"{'measure':<{width}}  value")
    print(f"{'-' * width}  ------")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
