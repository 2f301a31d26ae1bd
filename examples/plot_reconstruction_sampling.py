"""
=============================================================
Reconstruction sampling: denoising autoencoders on wide text
=============================================================

On sparse input (word counts, one-hot features) almost all of a denoising
autoencoder's decoder work goes into reconstructing zeros: every minibatch
decodes ``batch x n_features`` outputs. ``reconstruction_sampling=k``
(Dauphin, Glorot & Bengio, 2011) makes each minibatch reconstruct only the
words present in it plus ``k`` others drawn at random, with importance
weights that keep the loss an unbiased estimate of the full one.

Here a synthetic bag of words (a topic model with Zipf-distributed word
frequencies, about 70 distinct words per document) is widened from 2,000 to
100,000 words at the same number of non-zeros. Left: seconds per epoch.
Middle: the peak memory of ``fit`` (Python allocations, tracemalloc), and
(dotted) what any fit must hold: the weights, visible biases and Adam's two
moments, one column per word. The exact path adds minibatch buffers as wide
as the vocabulary; the sampled path's buffers grow with the words a
minibatch touches.

Right: the *exact* reconstruction loss on held-out documents, epoch by
epoch, at 10,000 words, and (legend) the accuracy of a logistic regression
predicting each document's topic from the codes, trained on 20 labelled
documents per topic. The sampled models start with their visible biases at
the word frequencies, the exact path at 0 (its default): "exact, biases from
the means" gives it the sampled models' start, and most of their lead is
that start.

Where sampling loses: with a small ``k`` the weights of absent words are
updated rarely (a "lazy" update touches only the drawn columns), so the full
reconstruction loss stays higher and the codes are worse (``k=20`` here).
And when a minibatch touches most of the vocabulary anyway (long documents,
a small vocabulary: not in this figure, see ``benchmarks/bench_sparse.py``)
it does the exact work plus its bookkeeping and is slower. These are single
runs with one seed on synthetic text; the sampled models beating the exact
path from the same start is not a general result.
"""

import time
import tracemalloc
import warnings

import matplotlib.pyplot as plt
import numpy as np
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from skdae import DenoisingAutoencoder

warnings.simplefilter("ignore", ConvergenceWarning)


def bag_of_words(n_docs, n_words, n_topics=10, length=80, seed=0):
    """Binary word presence from a Zipf topic model; labels are topics."""
    rng = np.random.RandomState(seed)
    base = 1.0 / np.arange(1, n_words + 1) ** 1.07
    topics = base * rng.lognormal(0, 1.5, size=(n_topics, n_words))
    topics /= topics.sum(axis=1, keepdims=True)
    base /= base.sum()
    y = rng.randint(n_topics, size=n_docs)
    cols = [np.unique(rng.choice(n_words, size=length,
                                 p=0.6 * topics[t] + 0.4 * base)) for t in y]
    indptr = np.r_[0, np.cumsum([len(c) for c in cols])]
    X = sp.csr_matrix((np.ones(indptr[-1], dtype=np.float32),
                       np.concatenate(cols), indptr), shape=(n_docs, n_words))
    return X, y


n_components = 32


def dae(k, epochs=2):
    return DenoisingAutoencoder(n_components, reconstruction_sampling=k, batch_size=50,
                                max_iter=epochs, learning_rate_init=1e-2,
                                random_state=0)


# %%
# Time and memory against the vocabulary size
# -------------------------------------------
widths = [2000, 10000, 30000, 100000]
paths = {"exact": None, "k=200": 200}
epoch_time = {name: [] for name in paths}
peak = {name: [] for name in paths}
state = []
dae(200, 1).fit(bag_of_words(50, 2000)[0])  # compile the kernels
for width in widths:
    X, _ = bag_of_words(400, width)
    # Weights, visible biases, Adam's two moments (float32).
    state.append(3 * (n_components + 1) * width * 4 / 2**20)
    for name, k in paths.items():
        tracemalloc.start()
        t0 = time.perf_counter()
        dae(k).fit(X)
        epoch_time[name].append((time.perf_counter() - t0) / 2)
        peak[name].append(tracemalloc.get_traced_memory()[1] / 2**20)
        tracemalloc.stop()
print(f"{X.nnz} non-zeros in 400 documents")
for name in paths:
    print(name, "s/epoch:", np.round(epoch_time[name], 3),
          "peak MiB:", np.round(peak[name], 1))

# %%
# The exact loss, epoch by epoch, at 10,000 words
# -----------------------------------------------
X, y = bag_of_words(1500, 10000)
train, test = np.arange(1000), np.arange(1000, 1500)
curves, accuracy = {}, {}
runs = {"exact": None, "exact, biases from the means": None,
        "k=2000": 2000, "k=200": 200, "k=20": 20}
for name, k in runs.items():
    # Sampling with k at least the number of words is bitwise an exact step,
    # from biases at the word frequencies: a first epoch of it gives the
    # exact path the sampled models' start.
    first = X.shape[1] if name.endswith("means") else k
    model = dae(first, epochs=1)
    curves[name] = []
    for epoch in range(12):
        model.partial_fit(X[train])
        model.set_params(reconstruction_sampling=k)
        curves[name].append(-model.score(X[test]))
    codes = model.transform(X)
    # Few labels, many unlabelled documents: 20 labelled per topic.
    labelled = np.concatenate([np.flatnonzero(y[train] == t)[:20]
                               for t in range(10)])
    clf = LogisticRegression(max_iter=1000).fit(codes[labelled], y[labelled])
    accuracy[name] = clf.score(codes[test], y[test])
    print(f"{name}: held-out loss {curves[name][-1]:.1f}, "
          f"topic accuracy {accuracy[name]:.3f}")

# %%
fig, axes = plt.subplots(1, 3, figsize=(14, 4))
for name in paths:
    axes[0].plot(widths, epoch_time[name], "o-", label=name)
    axes[1].plot(widths, peak[name], "o-", label=name)
axes[1].plot(widths, state, "k:", label="weights + Adam moments")
for ax, label in zip(axes[:2], ["seconds per epoch", "peak memory of fit (MiB)"]):
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("n_features (same non-zeros)")
    ax.set_ylabel(label)
    ax.legend()
for name, curve in curves.items():
    where = " (above the panel)" if name == "exact" else ""
    axes[2].plot(np.arange(1, len(curve) + 1), curve,
                 label=f"{name}{where}: topic accuracy {accuracy[name]:.2f}")
# The exact path from zero biases starts far above (its first epochs are
# spent learning that most words are absent): zoom on the others.
others = [c for name, c in curves.items() if name != "exact"]
axes[2].set_ylim(0.97 * np.min(others), 1.15 * np.max(others))
axes[2].set_xlabel("epoch")
axes[2].set_ylabel("exact held-out reconstruction loss")
axes[2].legend(fontsize=8)
fig.suptitle("DenoisingAutoencoder on a bag of words: exact vs "
             "reconstruction sampling")
fig.tight_layout()
plt.show()
