"""Training from any thread: the same model, the caller's settings, no leaks.

A fit promises a result that does not depend on the number of threads; a
server or Dask runs fits in worker threads, so the promise must hold there
too. These tests use the real process-wide BLAS limits, so they do not use
the ``quiet_single_threaded_blas`` fixture.
"""

import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn import config_context, get_config
from threadpoolctl import threadpool_info, threadpool_limits

from skdae import (
    DenoisingAutoencoder,
    DenoisingAutoencoderImputer,
    MarginalizedDenoisingAutoencoder,
    StackedDenoisingAutoencoder,
    StackedDenoisingAutoencoderClassifier,
    TabularDenoisingAutoencoder,
    _handoff,
    _parallel,
)
from skdae._parallel import (
    BlockRunner,
    available_threads,
    check_cancelled,
    map_row_blocks,
    run_jobs,
)

# warnings.catch_warnings is not thread-safe: filter for the whole module.
pytestmark = pytest.mark.filterwarnings(
    "ignore::sklearn.exceptions.ConvergenceWarning")

# Wide enough that OpenBLAS splits the products over threads, which then
# round differently from one thread.
ESTIMATORS = {
    "dae": lambda: DenoisingAutoencoder(n_components=300, max_iter=2,
                                        random_state=0),
    "stack": lambda: StackedDenoisingAutoencoder(
        hidden_layer_sizes=(300, 20), max_iter=2, random_state=0),
    "classifier": lambda: StackedDenoisingAutoencoderClassifier(
        hidden_layer_sizes=(300,), pretrain_max_iter=1, max_iter=2,
        random_state=0),
}


def _weights(estimator):
    if hasattr(estimator, "coefs_"):
        return [np.array(c) for c in estimator.coefs_]
    if hasattr(estimator, "autoencoders_"):
        return [layer.components_ for layer in estimator.autoencoders_]
    return [estimator.components_]


def _fit(name, X, y):
    return _weights(ESTIMATORS[name]().fit(X, y))


def _in_thread(func, *args):
    with ThreadPoolExecutor(1) as executor:
        return executor.submit(func, *args).result()


def _assert_bitwise_equal(a, b):
    assert len(a) == len(b)
    for wa, wb in zip(a, b):
        np.testing.assert_array_equal(wa, wb)


def _blas_threads():
    return [info["num_threads"] for info in threadpool_info()
            if info["user_api"] == "blas"]


@pytest.fixture
def data(digits):
    X, y = digits
    return X[:300], y[:300]


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_fit_in_worker_thread_is_bitwise_the_main_thread_fit(name, data):
    # Once a fit ran in the main thread, threadpoolctl >= 3.8 used to ignore
    # the one-thread BLAS limit set from any other thread.
    in_main = _fit(name, *data)
    in_worker = _in_thread(_fit, name, *data)
    _assert_bitwise_equal(in_main, in_worker)


def test_fit_in_worker_while_main_thread_holds_a_blas_limit(data):
    reference = _fit("dae", *data)
    with threadpool_limits(2, user_api="blas"):
        in_worker = _in_thread(_fit, "dae", *data)
    _assert_bitwise_equal(reference, in_worker)


def test_concurrent_fits_in_two_threads_match_the_main_thread(data):
    reference = _fit("dae", *data)
    barrier = threading.Barrier(2)

    def fit_together():
        barrier.wait()
        return _fit("dae", *data)

    with ThreadPoolExecutor(2) as executor:
        results = [f.result() for f in
                   [executor.submit(fit_together) for _ in range(2)]]
    for result in results:
        _assert_bitwise_equal(reference, result)


def test_fits_restore_blas_limits_and_leave_them_to_the_user(data):
    before = _blas_threads()
    _fit("dae", *data)
    _in_thread(_fit, "dae", *data)
    assert _blas_threads() == before

    # A fit does not take threadpoolctl's control of the BLAS pool away
    # from other threads: a worker's own limit still takes effect.
    def limited():
        with threadpool_limits(1, user_api="blas"):
            return _blas_threads()

    assert set(_in_thread(limited)) == {1}
    assert _blas_threads() == before


def test_fit_refuses_when_blas_cannot_be_limited(data, monkeypatch):
    if max(_blas_threads(), default=1) == 1:
        pytest.skip("BLAS already runs on one thread here")
    monkeypatch.setattr(_parallel, "_set_blas_threads", lambda lib, n: None)
    dae = ESTIMATORS["dae"]()
    with pytest.raises(RuntimeError, match="could not limit .* one thread"):
        dae.fit(data[0])
    monkeypatch.undo()
    _in_thread(_fit, "dae", *data)  # the counted limit was released


def test_block_runner_threads_see_the_callers_errstate_and_config():
    # numpy 1.x keeps its error state per thread; scikit-learn its config.
    def settings(_):
        return np.geterr()["over"], get_config()["assume_finite"]

    with BlockRunner(2) as runner:
        with np.errstate(over="ignore"), config_context(assume_finite=True):
            seen = runner.map(settings, list(range(4)))
        assert seen == [("ignore", True)] * 4
        with np.errstate(over="raise"):
            seen = runner.map(settings, list(range(4)))
        assert seen == [("raise", get_config()["assume_finite"])] * 4


class _PerThreadBLAS:
    """A stand-in for OpenBLAS on OpenMP: its limit is per thread."""

    internal_api, filepath, threading_layer = "openblas", "fake", "openmp"

    def __init__(self):
        self._local = threading.local()

    def get_num_threads(self):
        return getattr(self._local, "n", 4)

    def set_num_threads(self, n):
        self._local.n = n


def test_per_thread_blas_limits_reach_the_pool_threads(monkeypatch):
    lib = _PerThreadBLAS()
    monkeypatch.setattr(_parallel, "_blas_controllers", lambda: [lib])
    with BlockRunner(2) as runner:
        seen = runner.map(lambda _: lib.get_num_threads(), list(range(4)))
        assert seen == [1] * 4 and lib.get_num_threads() == 1
    assert lib.get_num_threads() == 4  # restored in the calling thread


@pytest.mark.parametrize("spins", [None, 1])
def test_block_runner_keeps_order_and_raises_after_every_block(monkeypatch,
                                                               spins):
    # spins=1: a hand-off that finds nothing at once sleeps, then wakes.
    if spins is not None:
        monkeypatch.setattr(_handoff, "SPINS", spins)
    finished = []

    def block(k):
        time.sleep(0.001 * (k % 3))
        if k == 5:
            raise ValueError("block 5")
        finished.append(k)
        return k * k

    with BlockRunner(2) as runner:
        for _ in range(3):
            assert runner.map(block, list(range(5))) == [k * k for k in
                                                         range(5)]
        finished.clear()
        with pytest.raises(ValueError, match="block 5"):
            runner.map(block, list(range(12)))
        # Every other block ran to its end before the error was raised.
        assert sorted(finished) == [k for k in range(12) if k != 5]
        assert runner.map(block, [1, 2]) == [1, 4]  # still usable


def test_handoff_counters_are_published_and_awaited():
    counters = np.zeros(3, dtype=np.int64)
    assert not _handoff.spin_until(counters, 1, 3, 1, 10)
    _handoff.publish(counters, 1, 1)
    assert not _handoff.spin_until(counters, 1, 3, 1, 10)
    _handoff.publish(counters, 2, 2)
    assert _handoff.spin_until(counters, 1, 3, 1, 10)
    assert counters.tolist() == [0, 1, 2]


# --------------------------------------------------------------------------
# Inference: results independent of the thread count, like the weights
# --------------------------------------------------------------------------
INFERENCE = {
    "dae": (ESTIMATORS["dae"],
            ("transform", "score_samples", "inverse_transform")),
    "stack": (ESTIMATORS["stack"],
              ("transform", "score_samples", "inverse_transform")),
    "classifier": (ESTIMATORS["classifier"],
                   ("predict_proba", "predict_log_proba")),
    "marginalized": (lambda: MarginalizedDenoisingAutoencoder(
        n_layers=2), ("transform",)),
}


@pytest.fixture(scope="module")
def inference_data(digits):
    # Several blocks of rows (map_row_blocks), so that two threads share them.
    X, y = digits
    return np.tile(X, (3, 1)), y[:300]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("name", sorted(INFERENCE))
def test_inference_is_bitwise_independent_of_the_thread_count(
        name, sparse, dtype, inference_data):
    # A whole-array, multi-threaded BLAS product rounds differently at 1
    # and 2 threads (it did in float64 on OpenBLAS's SkylakeX kernel).
    make, methods = INFERENCE[name]
    X, y = inference_data
    X = X.astype(dtype)
    model = make().fit(X[:300], y)
    if sparse:
        X = sp.csr_matrix(X)
    for method in methods:
        if method == "inverse_transform":
            with threadpool_limits(1):
                codes = model.transform(X)
            args = (codes,)
        else:
            args = (X,)
        with threadpool_limits(1):
            one = getattr(model, method)(*args)
        with threadpool_limits(2):
            two = getattr(model, method)(*args)
        if sp.issparse(one):
            one, two = one.toarray(), two.toarray()
        assert one.dtype == two.dtype
        np.testing.assert_array_equal(one, two, err_msg=method)


def test_a_transform_of_a_few_thousand_rows_uses_two_threads(monkeypatch):
    # MNIST's shape: 784 features, 500 units. Blocks of 2048 rows make a
    # 4096-row call two blocks; each waits at a barrier for the other, so
    # the call completes only if two threads encode at once (with blocks of
    # 8192 rows the one block's barrier would break).
    if available_threads() < 2:
        pytest.skip("needs two threads")
    rng = np.random.RandomState(0)
    X = rng.uniform(size=(4096, 784)).astype(np.float32)
    model = DenoisingAutoencoder(n_components=500, max_iter=1,
                                 random_state=0).fit(X[:256])
    barrier = threading.Barrier(2, timeout=30)
    threads = set()
    encode = DenoisingAutoencoder._encode

    def encode_at_once(self, X, out=None):
        threads.add(threading.get_ident())
        barrier.wait()
        return encode(self, X, out)

    monkeypatch.setattr(DenoisingAutoencoder, "_encode", encode_at_once)
    with threadpool_limits(2):
        codes = model.transform(X)
    assert len(threads) == 2
    monkeypatch.setattr(DenoisingAutoencoder, "_encode", encode)
    with threadpool_limits(1):
        np.testing.assert_array_equal(codes, model.transform(X))


@pytest.mark.parametrize("name", ["tabular", "imputer"])
def test_table_inference_is_bitwise_independent_of_the_thread_count(
        name, inference_data):
    X = np.tile(inference_data[0], (1, 4))
    X[np.random.RandomState(0).uniform(size=X.shape) < 0.1] = np.nan
    if name == "tabular":
        model = TabularDenoisingAutoencoder(hidden_layer_sizes=(48, 16),
                                            max_iter=2, random_state=0)
        methods = ("transform", "score_samples", "inverse_transform")
    else:
        model = DenoisingAutoencoderImputer(max_iter=2, random_state=0)
        methods = ("transform",)
    model.fit(X[:300])
    for method in methods:
        args = (model.transform(X),) if method == "inverse_transform" else (X,)
        with threadpool_limits(1):
            one = getattr(model, method)(*args)
        with threadpool_limits(2):
            two = getattr(model, method)(*args)
        np.testing.assert_array_equal(np.asarray(one, dtype=float),
                                      np.asarray(two, dtype=float),
                                      err_msg=method)


def test_map_row_blocks_keeps_the_order_of_rows_and_the_blas_limits():
    before = _blas_threads()

    def rows_and_blas(rows):
        assert set(_blas_threads()) <= {1}
        return np.arange(rows.start, rows.stop)

    with threadpool_limits(2):
        out = map_row_blocks(rows_and_blas, 1000, 64, np.empty(1000, int))
    np.testing.assert_array_equal(out, np.arange(1000))
    assert _blas_threads() == before


def test_available_threads_follows_limits_set_after_a_first_call():
    # The threadpoolctl controller is kept between calls; the limits it
    # reads are not.
    available_threads()
    with threadpool_limits(1, user_api="blas"):
        assert available_threads() == 1


def test_controller_is_remade_when_modules_are_imported(monkeypatch):
    # The rule of threadpoolctl >= 3.8's get_cached_controller, kept here for
    # older threadpoolctl (a BLAS comes with the extension module using it).
    monkeypatch.setattr(_parallel, "_cached_controller", None)
    monkeypatch.setattr(_parallel, "_controller_cache", [None, 0])
    first = _parallel._controller()
    assert _parallel._controller() is first
    monkeypatch.setitem(sys.modules, "skdae_test_new_module", None)
    assert _parallel._controller() is not first
    with threadpool_limits(1, user_api="blas"):
        assert available_threads() == 1


def _job_threads():
    return [t for t in threading.enumerate() if t.name.startswith("skdae-job")]


def test_run_jobs_returns_results_in_order_each_on_a_share_of_threads():
    names = set()

    def job(k):
        def run():
            time.sleep(0.01 * (6 - k))  # the later jobs finish first
            names.add(threading.current_thread().name)
            return k, available_threads()
        return run

    with threadpool_limits(2):
        results = run_jobs([job(k) for k in range(6)], 2)
        assert available_threads() == 2  # the cap ends with the jobs
    assert [k for k, _ in results] == list(range(6))
    assert {threads for _, threads in results} == {1}
    assert len(names) == 2  # the caller and one worker
    assert not _job_threads()
    # Four threads, two jobs: two each.
    with threadpool_limits(4):
        results = run_jobs([job(0), job(1)], 4)
    assert [threads for _, threads in results] == [
        min(2, available_threads()) for _ in range(2)]


def test_a_failing_job_stops_the_others_and_its_error_is_raised():
    steps = []

    def training():  # as run_epochs: one check per minibatch
        for step in range(2000):
            check_cancelled()
            time.sleep(0.001)
            steps.append(step)
        return "finished"

    def failing():
        time.sleep(0.05)
        raise MemoryError("network 2")

    with pytest.raises(MemoryError, match="network 2"):
        run_jobs([training, failing, training], 2)
    assert len(steps) < 2000  # stopped, not run to the end
    assert not _job_threads()
    # Of several failures, that of the first job in order.
    def fails(k):
        def run():
            time.sleep(0.02 * (3 - k))
            raise ValueError(f"job {k}")
        return run
    with pytest.raises(ValueError, match="job 0"):
        run_jobs([fails(k) for k in range(3)], 2)


def test_an_interrupted_caller_stops_the_jobs_of_its_workers():
    started, steps = threading.Event(), []

    def job():
        if threading.current_thread() is threading.main_thread():
            assert started.wait(10)
            raise KeyboardInterrupt
        started.set()
        for step in range(5000):
            check_cancelled()
            time.sleep(0.001)
            steps.append(step)

    with pytest.raises(KeyboardInterrupt):
        run_jobs([job, job, job], 2)
    assert 0 < len(steps) < 5000
    assert not _job_threads()
