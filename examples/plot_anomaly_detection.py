"""
====================================
Anomaly detection with score_samples
====================================

A :class:`~skdae.DenoisingAutoencoder` reconstructs well what looks like its
training data and badly what does not, so minus the reconstruction loss of a
sample, :meth:`~skdae.DenoisingAutoencoder.score_samples`, is an anomaly
score: low values flag outliers.

We train on digits, then score held-out digits mixed with two kinds of
injected outliers:

- *noise*: images of uniformly random pixels, an easy case;
- *mirrored*: held-out digits flipped left to right, which have the pixel
  intensities of digits and often their overall shape (0, 1 and 8 are nearly
  symmetric), a hard case.

ROC curves measure how well each score separates inliers from outliers, with
the reconstruction error of :class:`~sklearn.decomposition.PCA` as a
baseline.
"""

# %%
# Training data and test data with injected outliers
# --------------------------------------------------
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.model_selection import train_test_split

from skdae import DenoisingAutoencoder

X, y = load_digits(return_X_y=True)
X = (X / 16.0).astype(np.float32)
X_train, X_test = train_test_split(X, test_size=0.25, random_state=0,
                                   stratify=y)

rng = np.random.RandomState(0)
n_out = 40
X_noise = rng.uniform(size=(n_out, 64)).astype(np.float32)
picked = X_test[rng.choice(len(X_test), n_out, replace=False)]
X_mirrored = picked.reshape(-1, 8, 8)[:, :, ::-1].reshape(-1, 64)

X_eval = np.vstack([X_test, X_noise, X_mirrored])
group = np.array(["digit"] * len(X_test) + ["noise"] * n_out
                 + ["mirrored"] * n_out)
is_outlier = group != "digit"
print(f"{len(X_test)} held-out digits, {n_out} noise images, "
      f"{n_out} mirrored digits")

# %%
# Fit the models and score
# ------------------------
# Anomaly detection wants a model that reconstructs digits, not everything,
# so the code is narrow: 20 hidden units, like the 20 components of the PCA
# baseline. We fit a plain autoencoder and a denoising one (30% masking).
# ``score_samples`` is minus the reconstruction loss, so we negate it to get
# an outlier score (higher means more anomalous), as
# :func:`~sklearn.metrics.roc_auc_score` expects.
outlier_scores = {}
for name, level in (("autoencoder, no noise", 0.0),
                    ("DAE, 30% masking", 0.3)):
    dae = DenoisingAutoencoder(n_components=20, corruption_level=level,
                               learning_rate_init=3e-3, max_iter=100,
                               random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        dae.fit(X_train)
    outlier_scores[name] = -dae.score_samples(X_eval)

pca = PCA(n_components=20, random_state=0).fit(X_train)
outlier_scores["PCA (squared error)"] = np.sum(
    (pca.inverse_transform(pca.transform(X_eval)) - X_eval) ** 2, axis=1)

for name, score in outlier_scores.items():
    auc = {g: roc_auc_score(is_outlier[group != other],
                            score[group != other])
           for g, other in (("noise", "mirrored"), ("mirrored", "noise"))}
    print(f"{name:>22}: ROC AUC {auc['noise']:.3f} on noise, "
          f"{auc['mirrored']:.3f} on mirrored digits")

# %%
# Score distributions and ROC curves
# ----------------------------------
# Left: the DAE's outlier score of each group. Right: ROC curves on the hard
# case, mirrored digits against held-out digits.
fig, (ax_hist, ax_roc) = plt.subplots(1, 2, figsize=(11, 4.3))
dae_score = outlier_scores["DAE, 30% masking"]
bins = np.linspace(dae_score.min(), dae_score.max(), 50)
for g, colour in (("digit", "tab:blue"), ("mirrored", "tab:orange"),
                  ("noise", "tab:red")):
    ax_hist.hist(dae_score[group == g], bins=bins, alpha=0.6, color=colour,
                 label=f"{g} ({np.sum(group == g)})")
ax_hist.set_xlabel("-score_samples (cross-entropy reconstruction loss)")
ax_hist.set_ylabel("number of images")
ax_hist.set_title("Outlier score of the DAE (30% masking)")
ax_hist.legend()

hard = group != "noise"
colours = ("tab:olive", "tab:green", "tab:gray")
for (name, score), colour in zip(outlier_scores.items(), colours):
    fpr, tpr, _ = roc_curve(is_outlier[hard], score[hard])
    auc = roc_auc_score(is_outlier[hard], score[hard])
    ax_roc.plot(fpr, tpr, color=colour, label=f"{name} (AUC {auc:.2f})")
ax_roc.plot([0, 1], [0, 1], ":", color="black", linewidth=0.8,
            label="chance")
ax_roc.set_xlabel("false positive rate (digits flagged)")
ax_roc.set_ylabel("true positive rate (mirrored digits flagged)")
ax_roc.set_title("Detecting mirrored digits")
ax_roc.legend(loc="lower right")
fig.tight_layout()
plt.show()

# %%
# All three scores flag every noise image. Mirrored digits are harder: many
# are still plausible digits. Here the masking noise makes the autoencoder
# a slightly better detector than the plain autoencoder, but on this small
# data set the linear PCA baseline does better still; an autoencoder is not
# automatically the better anomaly detector, so compare with such a
# baseline on your own data. To turn a score into a decision, choose a
# threshold on held-out inliers, e.g. their 99th percentile of the outlier
# score for about 1% false alarms.
