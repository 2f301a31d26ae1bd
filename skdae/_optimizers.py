"""Stochastic optimizers: plain classes holding their state as NumPy arrays.

They mirror scikit-learn's ``neural_network._stochastic_optimizers`` (same
parameter names and update rules) but apply each update with one fused Numba
pass (``_kernels.adam_update`` / ``_kernels.sgd_update``) that also adds the
L2 penalty and, for tied weights, sums the encoder and decoder gradients.

Parameters and gradients are passed at every call and never stored. An
estimator keeps no optimizer object between calls, only its state as a plain
dict (``optimizer.state``: the solver name, the step counter and the moment or
velocity arrays), from which :func:`make_optimizer` continues.
"""

import numpy as np

from ._kernels import adam_update, sgd_update
from ._sparse_kernels import adam_update_columns, sgd_update_columns

# Solver codes of ``kernel_state`` (``_block_kernels.weight_gradient_step``).
ADAM, SGD = 0, 1


def _as_2d(a):
    """Biases are updated through (1, n) views so one kernel serves all."""
    return a.reshape(1, -1) if a.ndim == 1 else a


class _BaseOptimizer:
    def __init__(self, params, learning_rate_init):
        self.learning_rate_init = learning_rate_init
        self.learning_rate = float(learning_rate_init)

    def update_params(self, params, grads, batch_size, l2_flags, alpha):
        """Update ``params`` in place.

        Parameters
        ----------
        params : list of ndarray
            The parameters, updated in place.
        grads : list of tuple
            For each parameter, ``(grad,)`` or ``(grad, grad2)``: gradients
            summed over the minibatch (``grad2`` is added to ``grad``).
        batch_size : int
            Number of samples the gradients were summed over.
        l2_flags : list of bool
            Whether the L2 penalty ``alpha`` applies to each parameter.
        alpha : float
            L2 penalty, scaled by ``1 / batch_size`` as in scikit-learn's MLP.
        """
        self.start_step()
        for k, (param, grad, l2_flag) in enumerate(zip(params, grads, l2_flags)):
            self.update(k, param, grad, batch_size, l2_flag, alpha)

    def start_step(self):
        """Begin a minibatch step; then ``update`` each parameter once."""
        self._start_step()

    def update(self, k, param, grad, batch_size, l2_flag, alpha,
               rows=slice(None)):
        """Update ``param[rows]``, the parameter ``k``, and its state rows.

        Arguments as in ``update_params`` for one parameter. A weight matrix
        can be updated one block of rows at a time (in several threads), each
        as soon as its gradient rows are computed and still in cache.
        """
        scale = 1.0 / batch_size
        g1 = _as_2d(grad[0])[rows]
        g2 = _as_2d(grad[1])[rows] if len(grad) > 1 else g1
        l2 = alpha * scale if l2_flag else 0.0
        self._update(k, _as_2d(param)[rows], g1, g2, len(grad) > 1, scale, l2,
                     rows)

    def update_columns(self, k, param, grad, batch_size, l2_flag, alpha,
                       columns, weights, rows=slice(None)):
        """Update only the columns ``columns`` of ``param[rows]`` ("lazy").

        ``grad`` holds the gradients of these columns only (``grad[0][:, c]``
        is that of column ``columns[c]``; a bias's of shape
        ``(len(columns),)``); the L2 term of column ``columns[c]`` is
        multiplied by ``weights[c]``. The other columns and their optimizer
        state are not touched: their moments (Adam) or velocities (SGD) do
        not decay in this step, as in ``torch.optim.SparseAdam``. Used by
        reconstruction sampling (``_sampling``).
        """
        scale = 1.0 / batch_size
        g1 = _as_2d(grad[0])[rows]
        g2 = _as_2d(grad[1])[rows] if len(grad) > 1 else g1
        l2 = alpha * scale if l2_flag else 0.0
        self._update_columns(k, _as_2d(param)[rows], g1, g2, len(grad) > 1,
                             scale, l2, rows, columns, weights)


class RowUpdates:
    """The weight updates of a training step, a block of rows at a time.

    ``_network.forward_backward`` calls it as ``after_gradient(k, units)``
    once the rows ``units`` of the gradient of ``coefs[k]`` are complete;
    where the engine computes that gradient in compiled code, it applies the
    same update there, from :meth:`kernel_args`.

    Parameters
    ----------
    optimizer : AdamOptimizer or SGDOptimizer
    coefs, grads : list of ndarray
        The weight matrices and the buffers of their gradients.
    indices : list of int
        The optimizer's parameter index of each weight matrix.
    alpha : float
        L2 penalty (``update_params``).
    bias_indices : list of int, default=None
        The optimizer's parameter index of each bias, for
        :meth:`update_biases` and :meth:`step_args`.
    """

    def __init__(self, optimizer, coefs, grads, indices, alpha,
                 bias_indices=None):
        self.optimizer, self.coefs, self.grads = optimizer, coefs, grads
        self.indices, self.alpha = list(indices), alpha
        self.bias_indices = None if bias_indices is None else list(
            bias_indices)
        self.n, self._hyper, self._states = 1, None, None

    def start(self, batch_size):
        """Begin the step of a minibatch of ``batch_size`` rows."""
        self.optimizer.start_step()
        self.n = batch_size
        self._hyper = None  # the step's, made on first use

    def __call__(self, k, units):
        self.optimizer.update(self.indices[k], self.coefs[k], (self.grads[k],),
                              self.n, True, self.alpha, units)

    def kernel_args(self, k):
        """``(code, state_a, state_b, hyper, scale, l2)`` of ``coefs[k]``."""
        if self._hyper is None:
            self._hyper = self.optimizer.kernel_hyper()
        scale = 1.0 / self.n
        return (*self.optimizer.kernel_state(self.indices[k]), self._hyper,
                scale, self.alpha * scale)

    def update_biases(self, intercepts, grads):
        """Update every bias with its gradient (no L2 term)."""
        for index, b, g in zip(self.bias_indices, intercepts, grads):
            self.optimizer.update(index, b, (g,), self.n, False, self.alpha)

    def step_args(self):
        """The ``update`` argument of ``_block_kernels.whole_step``."""
        if self._states is None:  # the optimizer keeps its arrays
            code = self.optimizer.kernel_state(0)[0]
            states = [self.optimizer.kernel_state(i)[1:]
                      for i in self.indices + self.bias_indices]
            n = len(self.indices)
            self._states = (code, tuple(a for a, _ in states[:n]),
                            tuple(b for _, b in states[:n]),
                            tuple(a for a, _ in states[n:]),
                            tuple(b for _, b in states[n:]))
        if self._hyper is None:
            self._hyper = self.optimizer.kernel_hyper()
        scale = 1.0 / self.n
        return (*self._states, self._hyper, scale, self.alpha * scale)


def make_optimizer(estimator, params, state=None):
    """An optimizer for ``params`` with the estimator's current settings.

    ``solver``, ``learning_rate_init``, ``beta_1``, ``beta_2``, ``epsilon``,
    ``momentum`` and ``nesterovs_momentum`` are read from the estimator, so a
    change made with ``set_params`` between calls is followed. ``state`` (an
    optimizer's ``state`` dict) is continued if it is of the same solver and
    holds arrays of the shapes of ``params``; otherwise the state is fresh
    (a new solver starts a new optimizer of its kind).
    """
    est = estimator
    if est.solver == "adam":
        opt = AdamOptimizer(params, est.learning_rate_init, est.beta_1,
                            est.beta_2, est.epsilon)
        names = ("ms", "vs")
    else:
        opt = SGDOptimizer(params, est.learning_rate_init, est.momentum,
                           est.nesterovs_momentum)
        names = ("velocities",)
    if (state is not None and state.get("solver") == est.solver
            and all(len(state[n]) == len(params) for n in names)
            and all(s.shape == _as_2d(p).shape and s.dtype == p.dtype
                    for n in names for s, p in zip(state[n], params))):
        for n in names:
            setattr(opt, n, state[n])
        opt.t = state["t"]
    return opt


class AdamOptimizer(_BaseOptimizer):
    """Adam (Kingma & Ba, 2014) with scikit-learn's parameter names."""

    def __init__(self, params, learning_rate_init=1e-3, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8):
        super().__init__(params, learning_rate_init)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.t = 0
        self.ms = [np.zeros_like(_as_2d(p)) for p in params]
        self.vs = [np.zeros_like(_as_2d(p)) for p in params]

    @property
    def state(self):
        """The state to continue from: plain values and arrays."""
        return {"solver": "adam", "t": self.t, "ms": self.ms, "vs": self.vs}

    def _start_step(self):
        self.t += 1
        self.learning_rate = (
            self.learning_rate_init
            * np.sqrt(1 - self.beta_2**self.t)
            / (1 - self.beta_1**self.t)
        )

    def kernel_hyper(self):
        """This step's hyperparameters as ``_block_kernels`` takes them."""
        return np.array([self.learning_rate, self.beta_1, self.beta_2,
                         self.epsilon])

    def kernel_state(self, k):
        """Solver code and state arrays of parameter ``k`` (compiled)."""
        return ADAM, self.ms[k], self.vs[k]

    def _update(self, k, param, g1, g2, use_g2, scale, l2, rows):
        adam_update(param, g1, g2, use_g2, self.ms[k][rows], self.vs[k][rows],
                    scale, l2,
                    self.learning_rate, self.beta_1, self.beta_2, self.epsilon)

    def _update_columns(self, k, param, g1, g2, use_g2, scale, l2, rows,
                        columns, weights):
        adam_update_columns(param, g1, g2, use_g2, self.ms[k][rows],
                            self.vs[k][rows], columns, weights, scale, l2,
                            self.learning_rate, self.beta_1, self.beta_2,
                            self.epsilon)


class SGDOptimizer(_BaseOptimizer):
    """Stochastic gradient descent with (Nesterov) momentum."""

    def __init__(self, params, learning_rate_init=0.1, momentum=0.9,
                 nesterov=True):
        super().__init__(params, learning_rate_init)
        self.momentum = momentum
        self.nesterov = nesterov
        self.velocities = [np.zeros_like(_as_2d(p)) for p in params]
        self.t = 0

    @property
    def state(self):
        """The state to continue from: plain values and arrays."""
        return {"solver": "sgd", "t": self.t, "velocities": self.velocities}

    def _start_step(self):
        pass

    def kernel_hyper(self):
        """This step's hyperparameters as ``_block_kernels`` takes them."""
        return np.array([self.learning_rate, self.momentum,
                         float(self.nesterov), 0.0])

    def kernel_state(self, k):
        """Solver code and state arrays of parameter ``k`` (compiled)."""
        return SGD, self.velocities[k], self.velocities[k]

    def _update(self, k, param, g1, g2, use_g2, scale, l2, rows):
        sgd_update(param, g1, g2, use_g2, self.velocities[k][rows], scale, l2,
                   self.learning_rate, self.momentum, self.nesterov)

    def _update_columns(self, k, param, g1, g2, use_g2, scale, l2, rows,
                        columns, weights):
        sgd_update_columns(param, g1, g2, use_g2, self.velocities[k][rows],
                           columns, weights, scale, l2, self.learning_rate,
                           self.momentum, self.nesterov)
