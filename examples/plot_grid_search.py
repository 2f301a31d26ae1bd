"""
===================================================
Choosing corruption_level by cross-validated search
===================================================

How much noise is best depends on the data and on what the features are for,
so ``corruption_level`` is chosen like any other hyper-parameter: by
cross-validating the whole :class:`~sklearn.pipeline.Pipeline` that uses the
features. Here the pipeline scales the digits into [0, 1], encodes them with
a :class:`~skdae.DenoisingAutoencoder` and classifies the codes with a
:class:`~sklearn.linear_model.LogisticRegression`.
:class:`~sklearn.model_selection.GridSearchCV` tries several masking levels
and scores each on two criteria: the accuracy on the clean held-out digits,
and the accuracy on the same digits with 30% of their pixels masked, i.e.
how robust the classifier is to missing input.
"""

# %%
# The pipeline, the scorers and the search
# ----------------------------------------
# ``corruption_level=0`` is a plain autoencoder, the baseline. A parameter of
# a pipeline step is addressed as ``<step name>__<parameter>``. Each fit is
# short (40 epochs of 128 units, in float32) to keep this example fast.
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler

from skdae import DenoisingAutoencoder

X, y = load_digits(return_X_y=True)
X = X.astype(np.float32)


def masked_accuracy(estimator, X, y):
    """Accuracy on X with 30% of its pixels set to 0 (a fixed mask)."""
    mask = np.random.RandomState(0).uniform(size=X.shape) < 0.3
    return accuracy_score(y, estimator.predict(np.where(mask, 0, X)))


pipe = Pipeline([
    ("scale", MinMaxScaler()),
    ("dae", DenoisingAutoencoder(n_components=128, corruption="masking",
                                 learning_rate_init=3e-3, max_iter=40,
                                 random_state=0)),
    ("clf", LogisticRegression(max_iter=2000)),
])
levels = [0.0, 0.1, 0.2, 0.3, 0.5, 0.7]
search = GridSearchCV(
    pipe, {"dae__corruption_level": levels},
    scoring={"clean": "accuracy", "masked": masked_accuracy},
    refit="masked",  # best_estimator_ maximises the masked accuracy
    cv=StratifiedKFold(n_splits=3, shuffle=True, random_state=0),
    return_train_score=True)
with warnings.catch_warnings():
    # 40 epochs are fewer than the loss needs to converge: a speed trade-off.
    warnings.simplefilter("ignore", ConvergenceWarning)
    search.fit(X, y)

results = pd.DataFrame(search.cv_results_)
columns = {"param_dae__corruption_level": "corruption_level",
           "mean_test_clean": "clean accuracy",
           "mean_test_masked": "masked accuracy",
           "mean_fit_time": "fit time (s)"}
print(results[list(columns)].rename(columns=columns).round(4)
      .to_string(index=False))
print(f"\nBest for the masked accuracy: {search.best_params_}, "
      f"{search.best_score_:.4f}")

# %%
# The validation curves
# ---------------------
# Mean over the 3 folds, with one standard deviation shaded.
best = search.best_params_["dae__corruption_level"]
fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True)
curves = [
    (axes[0], "train_clean", "training folds", "tab:blue"),
    (axes[0], "test_clean", "held-out folds", "tab:orange"),
    (axes[1], "test_masked", "held-out folds, 30% of pixels masked",
     "tab:green"),
]
for ax, key, label, colour in curves:
    mean, std = results[f"mean_{key}"], results[f"std_{key}"]
    ax.plot(levels, mean, "o-", color=colour, label=label)
    ax.fill_between(levels, mean - std, mean + std, color=colour, alpha=0.2)
for ax, title, where in zip(axes, ("Accuracy on clean digits",
                                   "Accuracy on masked digits"),
                            ("center right", "lower right")):
    ax.axvline(best, color="grey", linestyle="--",
               label=f"refit choice: corruption_level={best}")
    ax.set_xlabel("corruption_level (fraction of pixels masked in training)")
    ax.set_title(title)
    ax.legend(loc=where, fontsize=9)
axes[0].set_ylabel("accuracy of LogisticRegression on the codes")
fig.tight_layout()
plt.show()

# %%
# On clean digits the noise buys nothing here: the held-out accuracy slowly
# drops as the masking level grows. On masked digits the picture reverses:
# training with masking noise makes the codes, and so the classifier, more
# robust to missing pixels; the accuracy rises over the first 10-20% of
# masking and levels off beyond (where levels tie, the search picks the
# first). The differences are of the order of the fold-to-fold spread (the
# shaded bands), so with this little data the trend matters more than the
# exact maximum. Which
# criterion to maximise is a decision about the application; ``refit`` names
# it, and ``search.best_estimator_`` is the whole pipeline refitted on all
# the data with that choice, ready to ``predict``.
#
# For ``corruption="gaussian"`` the level is a standard deviation, so search
# it relative to the scale of the data (after
# :class:`~sklearn.preprocessing.StandardScaler`, 0.1 to 1 is a typical
# range).
