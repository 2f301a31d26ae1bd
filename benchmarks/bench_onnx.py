"""Benchmark: inference speed of exported ONNX graphs against skdae's own.

Workload (defaults): a DenoisingAutoencoder 784 -> 500 (sigmoid), a
StackedDenoisingAutoencoderClassifier 784 -> 500 -> 500 -> 10 and a
MarginalizedDenoisingAutoencoder of two reduced layers 784 -> 500 -> 500
(tanh) returning the input and both layers (``features="all"``, 1784
columns), weights from a short fit on synthetic MNIST-like data (speed does
not depend on their values); and on a numeric table of 50 columns with 10%
of the entries missing, a TabularDenoisingAutoencoder (three layers of 224,
"auto", ``features="all"``) and a DenoisingAutoencoderImputer (two layers
of 224, with ``add_indicator``). For each batch size, ``transform`` /
``predict_proba`` of skdae and the same graph run by onnxruntime
(``skdae.onnx`` + ``skl2onnx.to_onnx``) are timed in turn, interleaved so
that both see the same machine load; the table gives rows per second
(median over the repeats) and the ratio ONNX / skdae.
skdae's threads are capped with threadpoolctl, onnxruntime's with
``intra_op_num_threads`` (one inter-op thread).

Needs the onnx extra: ``pip install "skdae[onnx]"``. Run
``python benchmarks/bench_onnx.py --help`` for the options; ``--quick`` is a
smoke run of a few seconds.
"""

import argparse
import time
import warnings

import numpy as np
from report import cpu_model
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_info, threadpool_limits

import skdae.onnx  # noqa: F401 (registers the converters)
from skdae import (
    DenoisingAutoencoder,
    DenoisingAutoencoderImputer,
    MarginalizedDenoisingAutoencoder,
    StackedDenoisingAutoencoderClassifier,
    TabularDenoisingAutoencoder,
)


def images(rng, n, width, dtype):
    X = rng.uniform(size=(n, width)).astype(dtype)
    X[X < 0.5] = 0
    return X


def table(rng, n, width, dtype):
    X = rng.normal(size=(n, width)).astype(dtype)
    X[rng.uniform(size=X.shape) < 0.1] = np.nan
    return X


def fitted_models(args, dtype):
    """label -> (model, its own inference method, the input's generator)."""
    rng = np.random.RandomState(0)
    X = images(rng, 512, args.width, dtype)
    T = table(rng, 512, args.table_width, dtype)
    y = rng.randint(10, size=X.shape[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ae = DenoisingAutoencoder(args.hidden, max_iter=1,
                                  random_state=0).fit(X)
        clf = StackedDenoisingAutoencoderClassifier(
            (args.hidden, args.hidden), pretrain_max_iter=1, max_iter=1,
            random_state=0).fit(X, y)
        tab = TabularDenoisingAutoencoder(max_iter=1, random_state=0).fit(T)
        imputer = DenoisingAutoencoderImputer(
            add_indicator=True, max_iter=1, early_stopping=False,
            random_state=0).fit(T)
    msda = MarginalizedDenoisingAutoencoder(
        2, n_components=args.hidden, random_state=0).fit(X)

    def on_images(n):
        return images(rng, n, args.width, dtype)

    def on_table(n):
        return table(rng, n, args.table_width, dtype)

    return {
        "DenoisingAutoencoder.transform": (ae, ae.transform, on_images),
        "SdAClassifier.predict_proba": (clf, clf.predict_proba, on_images),
        "MarginalizedDAE.transform": (msda, msda.transform, on_images),
        "TabularDAE.transform": (tab, tab.transform, on_table),
        "DAEImputer.transform": (imputer, imputer.transform, on_table),
    }


def onnx_function(model, dtype, threads):
    import onnxruntime as ort
    from skl2onnx import to_onnx

    X = np.zeros((1, model.n_features_in_), dtype=dtype)
    onx = to_onnx(model, X, options={id(model): {"zipmap": False}}
                  if hasattr(model, "classes_") else None)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(onx.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    last = session.get_outputs()[-1].name  # codes or probabilities
    return lambda X: session.run([last], {name: X})[0]


def seconds_per_call(fn, X, min_time):
    """Median seconds of one call, over calls lasting ``min_time`` in all."""
    fn(X)  # warm-up
    times = []
    while sum(times) < min_time or len(times) < 3:
        start = time.perf_counter()
        fn(X)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=784)
    parser.add_argument("--hidden", type=int, default=500)
    parser.add_argument("--table-width", type=int, default=50,
                        help="columns of the table of the tabular models")
    parser.add_argument("--batches", type=int, nargs="+",
                        default=[1, 16, 256, 4096])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    parser.add_argument("--repeats", type=int, default=5,
                        help="interleaved rounds; the median is reported")
    parser.add_argument("--min-time", type=float, default=0.05,
                        help="seconds of calls per measurement")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes, one thread, float32: a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.width, args.hidden, args.batches = 64, 32, [1, 64]
        args.table_width = 8
        args.threads, args.dtypes, args.repeats = [1], ["float32"], 2
        args.min_time = 0.01

    import onnxruntime
    import skl2onnx
    print(f"CPU: {cpu_model()}")
    for info in threadpool_info():
        if info["user_api"] == "blas":
            print(f"BLAS: {info['internal_api']} {info.get('version')} "
                  f"({info.get('architecture')}), {info['filepath']}")
    print(f"onnxruntime {onnxruntime.__version__}, skl2onnx "
          f"{skl2onnx.__version__}, skdae {skdae.__version__}")
    print(f"width {args.width}, hidden {args.hidden}, table width "
          f"{args.table_width}; rows/s, median of {args.repeats} rounds\n")
    header = (f"{'model':32} {'dtype':8} {'thr':>3} {'batch':>6} "
              f"{'skdae':>11} {'onnxruntime':>11} {'ratio':>6}")
    print(header)
    print("-" * len(header))
    for dtype in args.dtypes:
        for label, (model, own, sample) in fitted_models(args, dtype).items():
            for threads in args.threads:
                run_onnx = onnx_function(model, dtype, threads)
                for batch in args.batches:
                    X = sample(batch)
                    rounds = []
                    for _ in range(args.repeats):
                        with threadpool_limits(threads):
                            t_own = seconds_per_call(own, X, args.min_time)
                        t_onnx = seconds_per_call(run_onnx, X, args.min_time)
                        rounds.append((t_own, t_onnx))
                    t_own, t_onnx = np.median(rounds, axis=0)
                    print(f"{label:32} {dtype:8} {threads:>3} {batch:>6} "
                          f"{batch / t_own:>11.0f} {batch / t_onnx:>11.0f} "
                          f"{t_own / t_onnx:>6.2f}")


if __name__ == "__main__":
    main()
