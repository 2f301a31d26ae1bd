"""
======================================================
Fine-tuning a stacked denoising autoencoder end to end
======================================================

Greedy pretraining trains each layer of a
:class:`~skdae.StackedDenoisingAutoencoder` to reconstruct only its own
input, the codes of the layer below. Nothing in it asks the whole stack to
reconstruct the *image*: errors add up from layer to layer.
``fine_tune=True`` then trains all encoders and decoders together, as one
deep autoencoder, to reconstruct the clean input from its corrupted version
(Hinton & Salakhutdinov, 2006; Vincent et al., 2010, section 7).

Here a stack squeezes the 64 pixels of the digits into an 8-unit code. On
the left, the reconstruction error of held-out digits for three depths:
the greedy stack, the greedy stack with twice the epochs per layer, and the
first greedy stack fine-tuned for as many epochs as each layer had. On the
right, held-out digits and their reconstructions through the 3-layer
stack.
"""

import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from skdae import StackedDenoisingAutoencoder

warnings.simplefilter("ignore", ConvergenceWarning)

X, y = load_digits(return_X_y=True)
X = X / 16.0
X_train, X_test = train_test_split(X, test_size=0.3, random_state=0,
                                   stratify=y)


def mse(stack):
    """Mean squared error per pixel of the held-out reconstructions."""
    return np.mean((stack.inverse_transform(stack.transform(X_test))
                    - X_test) ** 2)


# %%
# Greedy and fine-tuned stacks
# ----------------------------
# The fine-tuned stack shares its pretraining with the greedy one (the same
# ``random_state``): the difference is the fine-tuning alone.
depths = {"2 layers": (32, 8), "3 layers": (64, 32, 8),
          "4 layers": (128, 64, 32, 8)}
variants = {"greedy, 30 epochs per layer": dict(max_iter=30),
            "greedy, 60 epochs per layer": dict(max_iter=60),
            "fine-tuned: greedy 30, then 30": dict(max_iter=30,
                                                   fine_tune=True)}
errors = {name: [] for name in variants}
stacks = {}
for depth, sizes in depths.items():
    for name, params in variants.items():
        stack = StackedDenoisingAutoencoder(
            hidden_layer_sizes=sizes, corruption_level=0.2,
            learning_rate_init=3e-3, fine_tune_max_iter=30, random_state=0,
            **params,
        ).fit(X_train)
        errors[name].append(mse(stack))
        stacks[depth, name] = stack
        print(f"{depth}, {name:>31}: held-out MSE {errors[name][-1]:.4f}")

# %%
# Plot
# ----
fig = plt.figure(figsize=(12, 3.8), layout="constrained")
left, right = fig.subfigures(1, 2, width_ratios=[1, 1.2])
ax = left.subplots()
width = 0.27
for i, (name, values) in enumerate(errors.items()):
    ax.bar(np.arange(len(depths)) + (i - 1) * width, values, width,
           label=name)
ax.set_xticks(np.arange(len(depths)), [f"{d}\n64-{'-'.join(map(str, s))}"
                                       for d, s in depths.items()])
ax.set_ylabel("held-out reconstruction MSE per pixel")
ax.set_title("8-unit codes of the digits")
ax.set_ylim(0, 1.35 * max(max(v) for v in errors.values()))
ax.legend(loc="upper left", fontsize=9, ncols=2)

rows = [("original", X_test[:8])]
for label, name in (("greedy", "greedy, 30 epochs per layer"),
                    ("fine-tuned", "fine-tuned: greedy 30, then 30")):
    stack = stacks["3 layers", name]
    rows.append((label, stack.inverse_transform(stack.transform(X_test[:8]))))
axes = right.subplots(len(rows), 8)
for r, (label, images) in enumerate(rows):
    for c in range(8):
        axes[r, c].imshow(images[c].reshape(8, 8), cmap="gray_r", vmin=0,
                          vmax=1)
        axes[r, c].set_xticks([])
        axes[r, c].set_yticks([])
    axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center")
right.suptitle("held-out digits through the 3-layer stack")
plt.show()
