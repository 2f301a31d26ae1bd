"""
===========================================
Inpainting digits with missing pixels (NaN)
===========================================

:class:`~skdae.DenoisingAutoencoder` takes NaN as a missing entry: it is fed
as corrupted (0, as masking noise feeds it) and carries no loss. A model can
then be trained on images with missing pixels, and
``inverse_transform(transform(X_with_nan))`` fills them in.

Here 30% of the pixels of every digit are missing, in training and test
images alike. The reconstruction is compared, on the missing test pixels
only, with the column means and :class:`~sklearn.impute.KNNImputer`.
"""

# %%
# Data with missing pixels
# ------------------------
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.impute import KNNImputer, SimpleImputer
from sklearn.model_selection import train_test_split

from skdae import DenoisingAutoencoder

X = load_digits().data / 16.0
X_train, X_test = train_test_split(X, test_size=0.25, random_state=0)
rng = np.random.RandomState(0)


def hide(X, fraction):
    return np.where(rng.uniform(size=X.shape) < fraction, np.nan, X)


X_train_nan, X_test_nan = hide(X_train, 0.3), hide(X_test, 0.3)
missing = np.isnan(X_test_nan)

# %%
# Train on the incomplete images, fill in the test images
# -------------------------------------------------------
# Emphasis (``uncorrupted_weight=0.5``) doubles the weight of the corrupted
# pixels in the loss: filling in is the task here.
dae = DenoisingAutoencoder(n_components=64, learning_rate_init=1e-2,
                           uncorrupted_weight=0.5, max_iter=100,
                           random_state=0).fit(X_train_nan)
filled = dae.inverse_transform(dae.transform(X_test_nan))

imputers = {
    "column means": SimpleImputer().fit(X_train_nan),
    "KNNImputer": KNNImputer().fit(X_train_nan),
}
rmse = {name: np.sqrt(np.mean((imp.transform(X_test_nan) - X_test)[missing]
                              ** 2))
        for name, imp in imputers.items()}
rmse["DenoisingAutoencoder"] = np.sqrt(np.mean((filled - X_test)[missing]
                                               ** 2))
for name, value in rmse.items():
    print(f"{name:>22}: RMSE on the missing pixels {value:.3f}")

# %%
# A single layer beats the column means clearly but not the nearest
# neighbours on this small data set: it is a feature learner that tolerates
# missing values, not a specialised imputer.
#
# Test digits: clean, with missing pixels (red), reconstructed
# --------------------------------------------------------------
shown = np.where(missing, filled, X_test)  # observed pixels kept
fig, axes = plt.subplots(3, 8, figsize=(8, 3.4))
for k in range(8):
    masked = np.ma.masked_invalid(X_test_nan[k].reshape(8, 8))
    cmap = plt.cm.gray_r.copy()
    cmap.set_bad("tab:red")
    for row, (image, cm) in enumerate([(X_test[k].reshape(8, 8), "gray_r"),
                                       (masked, cmap),
                                       (shown[k].reshape(8, 8), "gray_r")]):
        axes[row, k].imshow(image, cmap=cm, vmin=0, vmax=1)
        axes[row, k].set_axis_off()
for row, title in enumerate(["clean", "30% missing", "inpainted"]):
    axes[row, 0].set_title(title, fontsize=9, loc="left")
fig.tight_layout()
plt.show()
