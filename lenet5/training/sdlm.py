"""Stochastic diagonal Levenberg-Marquardt (Appendix C): per-parameter steps from the curvature.

Before each pass over the training set the diagonal Gauss-Newton curvature h_kk is averaged over a
sample of patterns (``LeNet5.curvature``, eqs. 23-27) and held fixed for the pass. Each parameter
then moves by ``eps_k * dE/dw_k`` with ``eps_k = eta / (mu + h_kk)`` (eqs. 18, 21), where eta follows
the paper's global schedule times a user factor ``lr_scale``.

Optionally the first ``start_epochs`` epochs run at ``start_factor`` times that eta. From the
paper's initialization the signals shrink layer by layer, so the curvature estimated before the
first epoch is about 1000 times smaller than after it, and every first-epoch step is close to
eta/mu: the first epochs cap the step size, and with the paper's schedule (which falls 2.5x after
epoch 2) that cap then holds for the whole run. Damping only the start lifts it (README, runs 40-).
"""

import numpy as np

# The paper's global learning rate per pass (Appendix C): (first epoch, eta), 1-based epochs.
PAPER_SCHEDULE = ((1, 0.0005), (3, 0.0002), (6, 0.0001), (9, 0.00005), (13, 0.00001))


def eta_for_epoch(epoch, lr_scale=1.0, start_epochs=0, start_factor=1.0):
    """Global eta of a 1-based ``epoch``: 0.0005 for 2 passes, 0.0002 for 3, 0.0001 for 3,
    0.00005 for 4, then 0.00001; multiplied by ``lr_scale``, and by ``start_factor`` during the
    first ``start_epochs`` epochs (1.0 and 0: the paper's schedule)."""
    if epoch < 1:
        raise ValueError(f"epoch is 1-based, got {epoch}")
    eta = PAPER_SCHEDULE[0][1]
    for first, value in PAPER_SCHEDULE:
        if epoch >= first:
            eta = value
    return eta * lr_scale * (start_factor if epoch <= start_epochs else 1.0)


def step_sizes(curvature, eta, mu):
    """eps_k = eta / (mu + h_kk) for every parameter (eq. 21); same keys as ``curvature``."""
    return {k: (eta / (mu + h)).astype(h.dtype) for k, h in curvature.items()}


def sdlm_update(params, grads, steps, velocity=None, momentum=0.0):
    """In place: w -= eps * g (eq. 18), or with momentum v = m v - eps g; w += v.

    ``params``, ``grads``, ``steps`` and ``velocity`` share their keys.
    """
    for k, w in params.items():
        step = steps[k] * grads[k]
        if momentum:
            v = velocity[k]
            v *= momentum
            v -= step
            w += v
        else:
            w -= step


def zero_velocity(params):
    """Momentum buffers, zeros like ``params``."""
    return {k: np.zeros_like(v) for k, v in params.items()}
