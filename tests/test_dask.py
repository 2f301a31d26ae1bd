"""Scaling out with Dask: out-of-core fit, distributed transform, grid search.

All tests share one ``LocalCluster`` of two worker processes started here, so
they exercise real pickling and real worker processes, not threads.
"""

import sys
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV

from skdae import DenoisingAutoencoder

_INSTALL = "pip install 'skdae[dask]'"
da = pytest.importorskip(
    "dask.array", reason=f"dask is not installed: {_INSTALL}")
distributed = pytest.importorskip(
    "dask.distributed", reason=f"dask.distributed is not installed: {_INSTALL}")
cloudpickle = pytest.importorskip("cloudpickle")  # a dependency of distributed

N_WORKERS = 2


@pytest.fixture(scope="module")
def client():
    # The workers cannot import this test module (tests/ is not on their
    # path): ship its functions by value.
    module = sys.modules[__name__]
    cloudpickle.register_pickle_by_value(module)
    # The nanny already sets OMP/MKL/OPENBLAS_NUM_THREADS=1 in the workers;
    # Numba's pool needs its own cap.
    cluster = distributed.LocalCluster(
        n_workers=N_WORKERS, threads_per_worker=1, processes=True,
        dashboard_address=":0", memory_limit="2GiB",
        env={"NUMBA_NUM_THREADS": "1"},
    )
    try:
        with distributed.Client(cluster) as client:
            yield client
    finally:
        cluster.close()
        cloudpickle.unregister_pickle_by_value(module)


@pytest.fixture(scope="module")
def digits_blocks(digits):
    """The digits in [0, 1], and as a dask array of four row blocks."""
    X = digits[0]
    return X, da.from_array(X, chunks=(450, -1))


def _dae(**params):
    defaults = dict(n_components=32, batch_size=50, random_state=0)
    return DenoisingAutoencoder(**{**defaults, **params})


def _fitted_dae(X, max_iter=5):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return _dae(max_iter=max_iter).fit(X)


def test_incremental_fit_streams_blocks_and_matches_fit(client, digits_blocks):
    wrappers = pytest.importorskip(
        "dask_ml.wrappers", reason="dask-ml is not installed")
    X, dX = digits_blocks
    n_epochs, n_blocks = 5, dX.numblocks[0]
    assert n_blocks > 1

    inc = wrappers.Incremental(_dae(), shuffle_blocks=True, random_state=0)
    with distributed.get_task_stream(client) as stream:
        for _ in range(n_epochs):
            inc.partial_fit(dX)
    model = inc.estimator_

    # One partial_fit (one skdae epoch) per block, each run on a worker.
    # (Task ("fit-...", -1) only holds the initial model.)
    fit_tasks = [t for t in stream.data if isinstance(t["key"], tuple)
                 and t["key"][0].startswith("fit-") and t["key"][1] >= 0]
    assert len(fit_tasks) == n_epochs * n_blocks
    assert {t["worker"] for t in fit_tasks} <= set(client.scheduler_info()
                                                  ["workers"])
    assert model.n_iter_ == n_epochs * n_blocks
    assert model.t_ == n_epochs * X.shape[0]

    # Same number of gradient steps as fit over the same epochs: the clean
    # reconstruction loss ends up close, and far below the untrained one.
    in_memory = _fitted_dae(X, max_iter=n_epochs)
    untrained = _dae().partial_fit(X[:1]).score(X)
    streamed, reference = model.score(X), in_memory.score(X)
    assert abs(streamed - reference) < 0.02 * abs(reference)
    assert abs(streamed - untrained) > 10 * abs(streamed - reference)


@pytest.mark.parametrize("route", ["map_blocks", "ParallelPostFit"])
def test_blockwise_transform_equals_in_memory(client, digits_blocks, route):
    X, dX = digits_blocks
    model = _fitted_dae(X, max_iter=2)
    if route == "map_blocks":
        H = dX.map_blocks(model.transform, dtype=X.dtype,
                          chunks=(dX.chunks[0], (model.n_components_,)),
                          meta=np.empty((0, 0), dtype=X.dtype))
        assert H.shape == (X.shape[0], model.n_components_)
    else:
        wrappers = pytest.importorskip(
            "dask_ml.wrappers", reason="dask-ml is not installed")
        # A fitted model can be wrapped as is. (dask-ml declares the output
        # chunks as the input's, so H.shape is only right after compute.)
        H = wrappers.ParallelPostFit(model).transform(dX)
    with distributed.get_task_stream(client) as stream:
        H = H.compute()
    assert len(stream.data) >= dX.numblocks[0]
    assert_allclose(H, model.transform(X), rtol=1e-10, atol=1e-12)

    scores = dX.map_blocks(model.score_samples, dtype=X.dtype, drop_axis=1,
                           meta=np.empty((0,), dtype=X.dtype))
    assert_allclose(scores.compute(), model.score_samples(X), rtol=1e-10)


def _score_and_worker_threads(estimator, X, y=None):
    """Scorer that also reports where, and with how many threads, it ran."""
    import numba
    from distributed import get_worker
    from threadpoolctl import threadpool_info

    from skdae._parallel import available_threads

    try:
        get_worker()
        on_worker = 1.0
    except ValueError:
        on_worker = 0.0
    return {
        "score": estimator.score(X),
        "on_worker": on_worker,
        "blas_threads": max(i["num_threads"] for i in threadpool_info()),
        "numba_threads": numba.get_num_threads(),
        # What skdae's training sizes its thread pool from.
        "training_threads": available_threads(),
    }


def test_grid_search_runs_on_workers_with_capped_threads(client, digits):
    from joblib import parallel_config  # joblib >= 1.3, as dask's backend

    X = digits[0][:600]
    grid = {"n_components": [8, 16], "corruption_level": [0.1, 0.4]}
    search = GridSearchCV(_dae(max_iter=3), grid, cv=2, n_jobs=-1,
                          scoring=_score_and_worker_threads, refit="score")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with parallel_config(backend="dask"):
            search.fit(X)
        local = GridSearchCV(_dae(max_iter=3), grid, cv=2, n_jobs=1).fit(X)

    results = search.cv_results_
    assert np.all(results["mean_test_on_worker"] == 1.0)
    assert np.all(results["mean_test_blas_threads"] == 1)
    assert np.all(results["mean_test_numba_threads"] == 1)
    assert np.all(results["mean_test_training_threads"] == 1)
    # Fixed seeds: the cluster finds exactly what a local search finds.
    assert_allclose(results["mean_test_score"],
                    local.cv_results_["mean_test_score"])
    assert search.best_params_ == local.best_params_
