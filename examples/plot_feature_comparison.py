"""
=====================================================
DAE features vs raw pixels, PCA and BernoulliRBM
=====================================================

Unsupervised feature learners are often judged by how well a simple
classifier does on the features they produce. This example puts four
representations of the digits in front of the same
:class:`~sklearn.linear_model.LogisticRegression` and compares their 5-fold
cross-validated accuracy:

- the raw pixels (64 features), the baseline;
- :class:`~sklearn.decomposition.PCA` with 40 components (linear features;
  the share of the variance they keep is computed below);
- :class:`~sklearn.neural_network.BernoulliRBM`, a restricted Boltzmann
  machine with 128 hidden units, another single-layer unsupervised learner;
- :class:`~skdae.DenoisingAutoencoder` with 128 hidden units, trained with
  and without masking noise.

Every transformer sits in a :class:`~sklearn.pipeline.Pipeline`, so it is fit
on the training folds only.
"""

# %%
# The pipelines
# -------------
import time
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_validate
from sklearn.neural_network import BernoulliRBM
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

from skdae import DenoisingAutoencoder

X, y = load_digits(return_X_y=True)
X = X.astype(np.float32)


# The same classifier for all. Its weak regularisation (C=100) suits the
# 128-wide learned codes (scikit-learn's own RBM example uses C=6000); on the
# raw pixels it makes little difference.
def classifier():
    return LogisticRegression(C=100, max_iter=3000)


def dae(level):
    return DenoisingAutoencoder(
        n_components=128, corruption="masking", corruption_level=level,
        learning_rate_init=3e-3, max_iter=60, random_state=0)


pipelines = {
    "raw pixels": make_pipeline(MinMaxScaler(), classifier()),
    "PCA (40)": make_pipeline(MinMaxScaler(), PCA(n_components=40),
                              classifier()),
    "BernoulliRBM (128)": make_pipeline(
        MinMaxScaler(),
        BernoulliRBM(n_components=128, learning_rate=0.06, n_iter=20,
                     random_state=0),
        classifier()),
    "autoencoder, no noise (128)": make_pipeline(MinMaxScaler(), dae(0.0),
                                                 classifier()),
    "DAE, 30% masking (128)": make_pipeline(MinMaxScaler(), dae(0.3),
                                            classifier()),
}

# %%
# How much of the variance do 40 principal components keep? (Measured on all
# the scaled digits; the pipelines fit PCA on the training folds only.)
variance = np.cumsum(
    PCA().fit(MinMaxScaler().fit_transform(X)).explained_variance_ratio_)
print(f"40 components keep {variance[39]:.1%} of the variance; "
      f"{np.searchsorted(variance, 0.95) + 1} components reach 95%.")

# %%
# Cross-validation
# ----------------
cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
scores, fit_times = {}, {}
for name, pipe in pipelines.items():
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = cross_validate(pipe, X, y, cv=cv)
    scores[name] = result["test_score"]
    fit_times[name] = result["fit_time"].mean()
    print(f"{name:>28}: accuracy {scores[name].mean():.4f} "
          f"+- {scores[name].std():.4f}, {fit_times[name]:.2f} s per fit")

# %%
# The comparison
# --------------
# Bars are the mean accuracy over the 5 folds; the dots are the individual
# folds.
names = list(scores)
means = np.array([scores[n].mean() for n in names])
fig, ax = plt.subplots(figsize=(7.5, 3.8))
positions = np.arange(len(names))[::-1]
colours = ["tab:gray", "tab:blue", "tab:purple", "tab:olive", "tab:orange"]
ax.barh(positions, means, color=colours, alpha=0.8)
for pos, name in zip(positions, names):
    ax.plot(scores[name], np.full(5, pos), "k.", markersize=6)
    ax.text(0.8505, pos, f"{scores[name].mean():.3f}", va="center",
            ha="left", color="white", fontweight="bold")
ax.set_yticks(positions)
ax.set_yticklabels(names)
ax.set_xlim(0.85, 1.0)
ax.set_xlabel("5-fold accuracy of LogisticRegression on the features")
ax.set_title("Features for a linear classifier on the digits")
fig.tight_layout()
plt.show()

# %%
# On these small, clean images the autoencoder codes, with or without noise,
# are level with the raw pixels (the differences are smaller than the spread
# between folds); PCA loses a little, and the RBM, trained here for a
# comparable time, more. A linear model on 64 clean pixels is already a
# strong baseline. Unsupervised features pay off more on larger
# inputs, with a deeper stack of layers (Vincent et al., 2010, stack
# denoising autoencoders and fine-tune them) or when the test data is noisier
# than the training data, as
# :ref:`sphx_glr_auto_examples_plot_grid_search.py` shows. Treat this
# example as a template for running the comparison on your own data.
