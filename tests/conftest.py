import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits


@pytest.fixture(scope="session")
def digits():
    """Digits scaled to [0, 1]."""
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


@pytest.fixture
def X_small():
    return np.random.RandomState(0).uniform(size=(60, 12))


@pytest.fixture
def quiet_single_threaded_blas():
    """No ConvergenceWarning, one BLAS thread: for many fits on tiny data.

    On tiny matrices a multi-threaded BLAS only adds synchronisation, which
    costs 10-20x on a loaded machine.
    """
    with warnings.catch_warnings(), threadpool_limits(1, user_api="blas"):
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield
