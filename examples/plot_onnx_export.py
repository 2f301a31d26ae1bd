"""
=====================================================
Exporting a pipeline to ONNX and running it elsewhere
=====================================================

A pipeline ``MinMaxScaler -> DenoisingAutoencoder -> LogisticRegression``
trained on the digits is exported to `ONNX <https://onnx.ai>`__ with
skl2onnx, then run by onnxruntime, which needs neither scikit-learn nor
skdae. Importing ``skdae.onnx`` registers skdae's converters with
skl2onnx; the pipeline then converts like any scikit-learn pipeline.

We check that the exported graph gives the same labels and probabilities,
and compare the speed of inference (rows per second) of the two, on small
and large batches. Last, a pipeline that imputes missing pixels with a
:class:`~skdae.DenoisingAutoencoderImputer` is exported the same way.
"""

import pickle
import time
import warnings

import matplotlib.pyplot as plt
import numpy as np
import onnxruntime as ort
from skl2onnx import to_onnx
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler
from threadpoolctl import threadpool_limits

import skdae.onnx  # noqa: F401 (registers skdae's converters with skl2onnx)
from skdae import DenoisingAutoencoder, DenoisingAutoencoderImputer

warnings.simplefilter("ignore", ConvergenceWarning)

X, y = load_digits(return_X_y=True)
X = X.astype(np.float32)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.3, random_state=0, stratify=y
)

pipe = make_pipeline(
    MinMaxScaler(),
    DenoisingAutoencoder(n_components=128, max_iter=30, random_state=0),
    LogisticRegression(max_iter=1000),
)
pipe.fit(X_train, y_train)
print(f"test accuracy: {pipe.score(X_test, y_test):.3f}")

# %%
# Export
# ------
# ``to_onnx`` takes one row of data to learn the input's type and width
# (float32 here: the graph then computes in float; a float64 row gives a
# graph in double). ``zipmap=False`` makes the probabilities one
# ``(n_samples, n_classes)`` tensor instead of a list of dictionaries.
onx = to_onnx(pipe, X_train[:1], options={id(pipe[-1]): {"zipmap": False}})
model_bytes = onx.SerializeToString()
print(f"ONNX model: {len(model_bytes) / 1e3:.0f} kB, pickle of the "
      f"pipeline: {len(pickle.dumps(pipe)) / 1e3:.0f} kB")

# One thread for onnxruntime, as for skdae's BLAS below: a fair comparison.
one_thread = ort.SessionOptions()
one_thread.intra_op_num_threads = 1
one_thread.inter_op_num_threads = 1
session = ort.InferenceSession(model_bytes, one_thread,
                               providers=["CPUExecutionProvider"])
input_name = session.get_inputs()[0].name
print("inputs:", [(i.name, i.type, i.shape) for i in session.get_inputs()])
print("outputs:", [(o.name, o.type, o.shape) for o in session.get_outputs()])

# %%
# Parity
# ------
# The graph repeats skdae's arithmetic (a matrix product, the bias, the
# sigmoid) in onnxruntime's kernels: the results agree to float32 rounding.
label, proba = session.run(None, {input_name: X_test})
ref_proba = pipe.predict_proba(X_test)
print("labels identical:", np.array_equal(label, pipe.predict(X_test)))
print(f"largest probability difference: {np.abs(proba - ref_proba).max():.1e}")

# %%
# Inference speed
# ---------------
# Each batch size is timed for the pipeline's ``predict_proba`` and for the
# ONNX session, and separately for the autoencoder's ``transform`` alone
# against its part of the graph (a second export of the fitted
# autoencoder). Every call of a scikit-learn estimator validates its input,
# a fixed cost that dominates small batches; onnxruntime's fixed cost per call
# is smaller. Timings depend on the machine and its load (these docs may have
# been built on a busy one): ``benchmarks/bench_onnx.py`` measures more sizes
# and thread counts. Both sides run on one thread.
ae = pipe[1]
X_scaled = pipe[0].transform(X)
ae_session = ort.InferenceSession(
    to_onnx(ae, X_scaled[:1]).SerializeToString(), one_thread,
    providers=["CPUExecutionProvider"])


def rows_per_second(fn, X, min_time=0.05):
    fn(X)
    times = []
    while sum(times) < min_time or len(times) < 5:
        start = time.perf_counter()
        fn(X)
        times.append(time.perf_counter() - start)
    return X.shape[0] / np.median(times)


batch_sizes = [1, 10, 100, 1000, 5000]
rng = np.random.RandomState(0)
speeds = {key: [] for key in ("pipe", "pipe_onnx", "ae", "ae_onnx")}
with threadpool_limits(1):
    for n in batch_sizes:
        rows = rng.randint(X.shape[0], size=n)
        speeds["pipe"].append(rows_per_second(pipe.predict_proba, X[rows]))
        speeds["pipe_onnx"].append(rows_per_second(
            lambda Z: session.run(None, {input_name: Z}), X[rows]))
        speeds["ae"].append(rows_per_second(ae.transform, X_scaled[rows]))
        speeds["ae_onnx"].append(rows_per_second(
            lambda Z: ae_session.run(None, {"X": Z}), X_scaled[rows]))

fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
for ax, (own, title) in zip(axes, [
        ("pipe", "Pipeline predict_proba"), ("ae", "DenoisingAutoencoder.transform")]):
    ax.loglog(batch_sizes, speeds[own], "o-", label="scikit-learn + skdae")
    ax.loglog(batch_sizes, speeds[own + "_onnx"], "s-", label="onnxruntime")
    ax.set_title(title)
    ax.set_xlabel("rows per call")
    ax.grid(True, which="both", alpha=0.3)
axes[0].set_ylabel("rows per second")
axes[0].legend()
fig.suptitle("Inference speed, 64 -> 128 units, float32, one thread")
fig.tight_layout()
plt.show()

for key, name in [("pipe", "pipeline"), ("ae", "autoencoder")]:
    ratios = np.array(speeds[key + "_onnx"]) / np.array(speeds[key])
    print(f"{name}: onnxruntime / skdae speed at batch sizes {batch_sizes}: "
          + ", ".join(f"{r:.1f}x" for r in ratios))

# %%
# Missing values
# --------------
# The imputer exports too (numeric columns): the graph feeds NaN as missing,
# runs the network (in float32, as skdae does) and replaces the missing
# entries by its predictions, observed entries passing through unchanged;
# ``add_indicator`` columns follow. Here a fifth of the pixels are missing.
rng = np.random.RandomState(0)
X_missing = X.copy()
X_missing[rng.uniform(size=X.shape) < 0.2] = np.nan
Xm_train, Xm_test = X_missing[:1200], X_missing[1200:]
impute_pipe = make_pipeline(
    DenoisingAutoencoderImputer(add_indicator=True, max_iter=20,
                                random_state=0),
    LogisticRegression(max_iter=1000),
).fit(Xm_train, y[:1200])
print(f"test accuracy with 20% missing pixels: "
      f"{impute_pipe.score(Xm_test, y[1200:]):.3f}")

onx = to_onnx(impute_pipe, Xm_train[:1],
              options={id(impute_pipe[-1]): {"zipmap": False}})
session = ort.InferenceSession(onx.SerializeToString(),
                               providers=["CPUExecutionProvider"])
label, proba = session.run(None, {"X": Xm_test})
print("labels identical:", np.array_equal(label, impute_pipe.predict(Xm_test)))
print("largest probability difference: "
      f"{np.abs(proba - impute_pipe.predict_proba(Xm_test)).max():.1e}")

# The imputer alone: its output is named "imputed".
imputer = impute_pipe[0]
session = ort.InferenceSession(to_onnx(imputer, Xm_test[:1]).SerializeToString(),
                               providers=["CPUExecutionProvider"])
imputed, = session.run(["imputed"], {"X": Xm_test})
want = imputer.transform(Xm_test)
observed = ~np.isnan(Xm_test)
print("observed pixels unchanged:",
      np.array_equal(imputed[:, :64][observed], Xm_test[observed]))
print(f"largest imputed-pixel difference: {np.abs(imputed - want).max():.1e} "
      "(pixels range from 0 to 16)")
