"""
===========================================
Learned filters without and with corruption
===========================================

Each hidden unit of a :class:`~skdae.DenoisingAutoencoder` computes
``s(w . x + b)``; its weight vector ``w`` (a row of ``components_``) has one
entry per pixel, so it can be shown as an 8x8 image: the *filter* the unit
responds to.

We train two models with the same 100 sigmoid units on the digits: a plain
autoencoder (``corruption_level=0``) and a denoising autoencoder that masks
half of the pixels of every training image. Vincent et al. (2008, 2010)
observed that corruption turns filters that look like noise into localised
detectors of strokes and blobs: to fill in a missing pixel, the model has to
rely on the pixels around it.
"""

# %%
# Train the two models
# --------------------
# The pixels are scaled into [0, 1], so ``loss="auto"`` picks the
# cross-entropy loss. Both models see the same data, the same
# initialisation and the same number of epochs; only the corruption differs.
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

from skdae import DenoisingAutoencoder

X, _ = load_digits(return_X_y=True)
X = X / 16.0

models = {}
for level in (0.0, 0.5):
    dae = DenoisingAutoencoder(
        n_components=100, corruption="masking", corruption_level=level,
        learning_rate_init=1e-2, max_iter=300, random_state=0,
        # Run all 300 epochs: the same training budget for both models.
        tol=0.0, n_iter_no_change=300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        dae.fit(X)
    models[level] = dae
    print(f"corruption_level={level}: final training loss "
          f"{dae.loss_curve_[-1]:.2f} after {dae.n_iter_} epochs")

# %%
# Plot the filters
# ----------------
# Each tile is one row of ``components_`` reshaped to 8x8, on a symmetric
# colour scale per tile (red positive, blue negative weights). We show the
# first 25 of the 100 units, with no selection. The pixels near the left and
# right edges are 0 in almost every image (mean intensity below 0.03): their
# weights get almost no training signal and keep their random initial
# values, so they are drawn in grey and left out of the colour scale.
rarely_on = (X.mean(axis=0) < 0.03).reshape(8, 8)
cmap = plt.get_cmap("RdBu_r").with_extremes(bad="0.6")


def plot_filters(ax_grid, W):
    for ax, k in zip(ax_grid.ravel(), range(W.shape[0])):
        w = np.ma.masked_array(W[k].reshape(8, 8), mask=rarely_on)
        bound = np.abs(w).max()
        ax.imshow(w, cmap=cmap, vmin=-bound, vmax=bound,
                  interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])


fig = plt.figure(figsize=(10, 5.3))
subfigs = fig.subfigures(1, 2, wspace=0.06)
titles = {0.0: "No corruption (plain autoencoder)",
          0.5: "50% masking noise (denoising autoencoder)"}
for subfig, (level, dae) in zip(subfigs, models.items()):
    axes = subfig.subplots(5, 5)
    subfig.subplots_adjust(wspace=0.08, hspace=0.08)
    plot_filters(axes, dae.components_)
    subfig.suptitle(titles[level], fontsize=12)
plt.show()

# %%
# A number to go with the picture: the correlation between the weights of
# horizontally and vertically adjacent pixels (both outside the grey edges),
# over all filters. Smooth,
# blob-like filters have a high correlation; salt-and-pepper filters have
# one near zero.


def neighbour_correlation(W):
    tiles = W.reshape(-1, 8, 8)
    on = ~rarely_on
    pairs = [(tiles[:, :, :-1], tiles[:, :, 1:], on[:, :-1] & on[:, 1:]),
             (tiles[:, :-1, :], tiles[:, 1:, :], on[:-1, :] & on[1:, :])]
    a = np.concatenate([p[:, keep] for p, _, keep in pairs], axis=1)
    b = np.concatenate([q[:, keep] for _, q, keep in pairs], axis=1)
    return np.corrcoef(a.ravel(), b.ravel())[0, 1]


for level, dae in models.items():
    print(f"corruption_level={level}: neighbouring weights correlate at "
          f"{neighbour_correlation(dae.components_):.2f}")

# %%
# Without corruption most filters are a salt-and-pepper of isolated pixels of
# either sign: with more units than pixels, the model reconstructs its input
# well without having to learn what digits look like, and it reaches the
# lower training loss. With masking noise more of the filters are made of
# contiguous patches of same-sign weights, the size of pieces of strokes, and
# neighbouring weights correlate much more. The patterns are coarse because
# the digits have only 8x8 pixels; Vincent et al. (2010) show the same effect
# more clearly on 28x28 MNIST digits and on natural image patches.
# Whether these codes make better features is measured in
# :ref:`sphx_glr_auto_examples_plot_feature_comparison.py`.
