"""
=============================================
Denoising digits with the three noise types
=============================================

A :class:`~skdae.DenoisingAutoencoder` is trained to undo the corruption it
sees during training, so ``inverse_transform(transform(X_noisy))`` is a
denoised version of ``X_noisy``. This example trains one model per noise type
on the digits and shows, for a few test digits never seen in training, the
clean image, the image corrupted with the same kind of noise, and the model's
reconstruction.

- ``"masking"``: each pixel is set to 0 (black) with probability
  ``corruption_level``;
- ``"gaussian"``: Gaussian noise of standard deviation ``corruption_level``
  is added to every pixel;
- ``"salt_and_pepper"``: each pixel is, with probability
  ``corruption_level``, set to the minimum or the maximum of the training
  data (0 or 1 here).
"""

# %%
# Data and models
# ---------------
# Pixels are scaled into [0, 1], so the cross-entropy loss is chosen
# (``loss_ == "cross_entropy"``) and reconstructions are in [0, 1] too.
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from skdae import DenoisingAutoencoder

X, y = load_digits(return_X_y=True)
X = (X / 16.0).astype(np.float32)  # float32 trains faster
X_train, X_test = train_test_split(X, test_size=0.25, random_state=0,
                                   stratify=y)

noise = {"masking": 0.4, "gaussian": 0.4, "salt_and_pepper": 0.3}
models = {}
for kind, level in noise.items():
    dae = DenoisingAutoencoder(
        n_components=128, corruption=kind, corruption_level=level,
        learning_rate_init=3e-3, max_iter=60, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        models[kind] = dae.fit(X_train)


# %%
# Corrupt the test digits
# -----------------------
# The same kinds of noise, drawn with our own random generator.
def corrupt(X, kind, level, rng):
    if kind == "masking":
        return np.where(rng.uniform(size=X.shape) < level, 0.0, X)
    if kind == "gaussian":
        return X + rng.normal(scale=level, size=X.shape)
    hit = rng.uniform(size=X.shape) < level
    salt = rng.uniform(size=X.shape) < 0.5
    return np.where(hit, np.where(salt, 1.0, 0.0), X)


rng = np.random.RandomState(42)
results = {}
for kind, dae in models.items():
    X_noisy = corrupt(X_test, kind, noise[kind], rng)
    X_denoised = dae.inverse_transform(dae.transform(X_noisy))
    results[kind] = (X_noisy, X_denoised)
    mse_noisy = np.mean((X_noisy - X_test) ** 2)
    mse_denoised = np.mean((X_denoised - X_test) ** 2)
    print(f"{kind:>15}: mean squared error to the clean digits "
          f"{mse_noisy:.4f} corrupted, {mse_denoised:.4f} reconstructed")

# %%
# Clean, corrupted and reconstructed digits
# -----------------------------------------
# One row of clean test digits, then two rows per noise type. Gaussian noise
# takes pixels outside [0, 1]; the grey scale is clipped to [0, 1] for
# display.
n_show = 10
rows = [("clean", X_test)]
for kind, (X_noisy, X_denoised) in results.items():
    rows.append((f"{kind}\ncorrupted", X_noisy))
    rows.append((f"{kind}\nreconstructed", X_denoised))

fig, axes = plt.subplots(len(rows), n_show, figsize=(9, 7.2))
for (label, images), ax_row in zip(rows, axes):
    for i, ax in enumerate(ax_row):
        ax.imshow(images[i].reshape(8, 8), cmap="gray_r", vmin=0, vmax=1,
                  interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
    ax_row[0].set_ylabel(label, rotation=0, ha="right", va="center",
                         fontsize=10)
fig.suptitle("Test digits: clean, corrupted, and reconstructed by a DAE "
             "trained with the same noise")
fig.subplots_adjust(left=0.2, right=0.98, top=0.93, bottom=0.02,
                    wspace=0.08, hspace=0.12)
plt.show()

# %%
# Each model removes most of the noise it was trained on: masked strokes are
# filled in, isolated salt pixels are erased, and the Gaussian speckle is
# smoothed away, at the price of some blur. The mean squared errors printed
# above put numbers on it. Which noise to train with depends on the data and
# on what the features are for; the :ref:`user_guide` discusses the choice.
