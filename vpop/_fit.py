r"""Generic fitting with optax: individual (vmapped) MAP fits with Laplace standard errors.

A :class:`FitProblem` names its parameters (:class:`Param`: unit, transform to unconstrained space,
optional log-normal/normal prior), its observables with a measurement-error model
(:class:`ErrorModel`) and a pure JAX function ``predict(theta, data) -> {observable: array}`` written
for **one subject**. :func:`fit_individuals` fits every subject at once (``vmap`` over subjects and
over starts) by minimising, in the unconstrained coordinates ``z``,

.. math::

    \mathcal{L}(z) = \tfrac12 \sum_{k,j} m_{kj} \Big(\frac{f_{kj}(\theta(z)) - y_{kj}}{\sigma_{kj}}\Big)^2
                   + \tfrac12 \sum_p \Big(\frac{z_p - \mu_p}{\omega_p}\Big)^2 ,
    \qquad \sigma_{kj} = \sqrt{a_k^2 + (b_k\, y_{kj})^2},

(``m`` masks missing samples, given as NaN; ``a`` additive SD, ``b`` proportional SD, computed from the
observations so the loss stays a weighted least-squares problem; priors only on parameters that
declare one; ``μ = log(median)`` and ``ω`` the log-scale SD for a log-normal prior) with optax
L-BFGS. Transforms: ``log`` (θ = e^z), ``logit`` (θ = lo + (hi − lo)·σ(z)), ``identity``.

Uncertainty: the Laplace/Gauss–Newton covariance ``(JᵀJ)⁻¹`` of the stacked whitened residuals
(data and priors) at the optimum, mapped to θ by the delta method. Identifiability, per parameter:
relative SE ≤ ``rse_max`` (default 0.3) **and**, where a prior is declared, the data shrink its
log-scale variance to ≤ ``shrinkage_max`` (0.5) of the prior's (otherwise the estimate is the prior,
not the data).

Multi-start: ``n_starts`` starting points per subject, the first the declared ``init``, the others
``init`` perturbed by N(0, ``start_sd``²) in z; the best objective wins; the convergence report
gives, per subject, whether the winner converged (‖∇L‖∞ ≤ ``gtol``) and how many starts reached the
best objective within ``ftol``.

Checkpoint/resume: with ``checkpoint=PATH`` the optimiser state (z, L-BFGS memory, done flags,
iteration count) is written every ``checkpoint_every`` iterations, atomically (temporary file +
``os.replace``); a later call with the same problem, data and options resumes from it and, because
iterations run in the same compiled chunks, ends bit-for-bit where an uninterrupted run ends.

Data: :func:`tidy_to_arrays` turns a tidy (long) table with unit-bearing column names
(``subject``, ``time [min]``, ``glucose [mg/dL]``, …) into padded per-subject arrays, checking each
column's unit and naming the column and the expected unit on a mismatch.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import tempfile
from dataclasses import dataclass, field
from typing import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd

TRANSFORMS = ("log", "logit", "identity")
#: data keys of a per-subject population prior (set by :func:`fit_population`; replace the Params' priors)
POP_MEAN, POP_WHITEN = "_population_mean_z", "_population_whitening"


@dataclass(frozen=True)
class Param:
    """One fitted parameter: name, unit, initial value, transform, optional prior.

    ``prior_median``/``prior_sd``: a log-normal prior (median, SD of log θ) for ``log``; a normal
    prior on z for ``logit``/``identity`` (``prior_median`` is then θ's median).
    """

    name: str
    unit: str
    init: float
    transform: str = "log"
    lower: float | None = None
    upper: float | None = None
    prior_median: float | None = None
    prior_sd: float | None = None

    def __post_init__(self):
        if self.transform not in TRANSFORMS:
            raise ValueError(f"Param {self.name!r}: transform must be one of {TRANSFORMS}, got {self.transform!r}")
        if self.transform == "log" and not self.init > 0:
            raise ValueError(f"Param {self.name!r}: init must be > 0 for a log transform, got {self.init}")
        if self.transform == "logit":
            if self.lower is None or self.upper is None or not self.lower < self.init < self.upper:
                raise ValueError(f"Param {self.name!r}: logit needs lower < init < upper, got {self.lower}, {self.init}, {self.upper}")
        if (self.prior_median is None) != (self.prior_sd is None):
            raise ValueError(f"Param {self.name!r}: give both prior_median and prior_sd, or neither")
        if self.prior_sd is not None and not self.prior_sd > 0:
            raise ValueError(f"Param {self.name!r}: prior_sd must be > 0, got {self.prior_sd}")

    def to_z(self, theta):
        if self.transform == "log":
            return jnp.log(theta)
        if self.transform == "logit":
            u = (theta - self.lower) / (self.upper - self.lower)
            return jnp.log(u) - jnp.log1p(-u)
        return jnp.asarray(theta, float)

    def from_z(self, z):
        if self.transform == "log":
            return jnp.exp(z)
        if self.transform == "logit":
            return self.lower + (self.upper - self.lower) * jax.nn.sigmoid(z)
        return z

    def dtheta_dz(self, theta):
        if self.transform == "log":
            return theta
        if self.transform == "logit":
            return (theta - self.lower) * (self.upper - self.lower - (theta - self.lower)) / (self.upper - self.lower)
        return np.ones_like(theta)


@dataclass(frozen=True)
class ErrorModel:
    """Measurement error of one observable: σ = sqrt(additive_sd² + (proportional_sd·y)²), in ``unit``."""

    observable: str
    unit: str
    additive_sd: float = 0.0
    proportional_sd: float = 0.0

    def __post_init__(self):
        if self.additive_sd < 0 or self.proportional_sd < 0 or self.additive_sd + self.proportional_sd <= 0:
            raise ValueError(f"ErrorModel {self.observable!r}: SDs must be ≥ 0 and not both 0, got "
                             f"additive_sd={self.additive_sd}, proportional_sd={self.proportional_sd}")


@dataclass(frozen=True)
class FitProblem:
    """Parameters, observables and a one-subject ``predict(theta: dict, data: dict) -> dict``.

    ``data`` holds the subject's arrays; each observable ``name`` is read from ``data[name]``
    (NaN = missing) and ``predict`` must return an array of the same shape under the same key.
    """

    params: tuple[Param, ...]
    errors: tuple[ErrorModel, ...]
    predict: Callable = field(compare=False)
    name: str = "problem"

    @property
    def names(self):
        return tuple(p.name for p in self.params)

    def theta(self, z):
        return {p.name: p.from_z(z[i]) for i, p in enumerate(self.params)}

    def z_init(self):
        return jnp.stack([p.to_z(jnp.asarray(p.init, float)) for p in self.params])

    def _prior(self):
        has = np.array([p.prior_sd is not None for p in self.params])
        with jax.ensure_compile_time_eval():
            mu = np.array([float(p.to_z(np.float64(p.prior_median))) if p.prior_sd is not None else 0.0 for p in self.params])
        sd = np.array([p.prior_sd if p.prior_sd is not None else 1.0 for p in self.params])
        return has, mu, sd

    def residuals(self, z, data, include_prior=True):
        """Whitened residuals of one subject (masked samples give 0), then the prior residuals."""
        pred = self.predict(self.theta(z), data)
        out = []
        for e in self.errors:
            y = data[e.observable]
            ok = jnp.isfinite(y)
            y0 = jnp.where(ok, y, 0.0)
            sigma = jnp.sqrt(e.additive_sd ** 2 + (e.proportional_sd * y0) ** 2)
            sigma = jnp.where(ok, sigma, 1.0)
            out.append(jnp.where(ok, (pred[e.observable] - y0) / sigma, 0.0).ravel())
        if include_prior:
            if POP_MEAN in data:  # a population prior per subject (fit_population): W (z − μ_i), W = chol(Ω)⁻¹
                out.append(data[POP_WHITEN] @ (z - data[POP_MEAN]))
            else:
                has, mu, sd = self._prior()
                out.append(jnp.where(has, (z - mu) / sd, 0.0))
        return jnp.concatenate(out)

    def loss(self, z, data):
        r = self.residuals(z, data)
        return 0.5 * jnp.sum(r * r)


@dataclass
class FitResult:
    """Per-subject estimates, standard errors, identifiability and convergence."""

    problem: FitProblem
    subjects: list
    z: np.ndarray  # (S, P) best start
    estimates: np.ndarray  # (S, P)
    standard_errors: np.ndarray  # (S, P) Laplace
    shrinkage: np.ndarray  # (S, P) posterior/prior variance of z (NaN without prior)
    covariance_z: np.ndarray  # (S, P, P) Laplace covariance in the unconstrained coordinates
    objective: np.ndarray  # (S,)
    converged: np.ndarray  # (S,) bool
    iterations: np.ndarray  # (S,)
    n_starts_at_best: np.ndarray  # (S,)
    n_starts: int
    rse_max: float = 0.3
    shrinkage_max: float = 0.5

    @property
    def relative_standard_errors(self):
        return np.abs(self.standard_errors / self.estimates)

    def identifiable(self) -> pd.DataFrame:
        """Per parameter: median relative SE and prior shrinkage over subjects, and the verdict."""
        rows = []
        for i, p in enumerate(self.problem.params):
            rse = float(np.nanmedian(self.relative_standard_errors[:, i]))
            shr = float(np.nanmedian(self.shrinkage[:, i])) if p.prior_sd is not None else float("nan")
            why = []
            if not rse <= self.rse_max:
                why.append("relative SE > %.2g" % self.rse_max)
            if p.prior_sd is not None and not shr <= self.shrinkage_max:
                why.append("prior-dominated (posterior/prior variance > %.2g)" % self.shrinkage_max)
            ok = not why
            why = "; ".join(why)
            rows.append({"parameter": p.name, "unit": p.unit, "median_relative_se [1]": rse,
                         "median_shrinkage [1]": shr, "identifiable": bool(ok), "reason": why})
        return pd.DataFrame(rows)

    def table(self) -> pd.DataFrame:
        """Long table: subject, parameter, unit, estimate, standard_error, relative_se, converged."""
        S, P = self.estimates.shape
        return pd.DataFrame({
            "subject": np.repeat(np.asarray(self.subjects, dtype=object), P),
            "parameter": np.tile(self.problem.names, S),
            "unit": np.tile([p.unit for p in self.problem.params], S),
            "estimate": self.estimates.ravel(),
            "standard_error": self.standard_errors.ravel(),
            "relative_se [1]": self.relative_standard_errors.ravel(),
            "converged": np.repeat(self.converged, P),
        })

    def convergence_report(self) -> dict:
        return {
            "n_subjects": int(len(self.converged)),
            "n_converged": int(np.sum(self.converged)),
            "n_starts": self.n_starts,
            "median_iterations": float(np.median(self.iterations)),
            "fraction_subjects_best_reached_by_all_starts": float(np.mean(self.n_starts_at_best == self.n_starts)),
            "median_starts_at_best": float(np.median(self.n_starts_at_best)),
        }


_OPT = optax.lbfgs()


@functools.lru_cache(maxsize=32)
def _make_chunk(problem: FitProblem, gtol: float, k: int):
    """A jitted function running ``k`` L-BFGS iterations for every (subject, start), converged ones frozen."""

    def one_step(z, state, done, iters, data):
        loss = lambda x: problem.loss(x, data)  # noqa: E731
        value, grad = optax.value_and_grad_from_state(loss)(z, state=state)
        updates, new_state = _OPT.update(grad, state, z, value=value, grad=grad, value_fn=loss)
        new_z = optax.apply_updates(z, updates)
        now_done = done | (jnp.max(jnp.abs(grad)) <= gtol)
        bad = ~jnp.all(jnp.isfinite(new_z))
        keep = now_done | bad
        new_z = jnp.where(keep, z, new_z)
        new_state = jax.tree_util.tree_map(lambda a, b: jnp.where(keep, a, b), state, new_state)
        return new_z, new_state, now_done, iters + jnp.where(keep, 0, 1)

    per_start = jax.vmap(one_step, in_axes=(0, 0, 0, 0, None))
    per_subject = jax.vmap(per_start, in_axes=(0, 0, 0, 0, 0))

    @jax.jit
    def chunk(z, state, done, iters, data):
        # up to k iterations; stops as soon as every (subject, start) has converged
        def cond(c):
            return (c[0] < k) & ~jnp.all(c[1][2])

        def body(c):
            return c[0] + 1, per_subject(*c[1], data)

        _, (z, state, done, iters) = jax.lax.while_loop(cond, body, (0, (z, state, done, iters)))
        return z, state, done, iters

    return chunk


def _fingerprint(problem, data, z0):
    h = hashlib.sha256()
    h.update(repr((problem.name, problem.params, problem.errors)).encode())
    for key in sorted(data):
        h.update(key.encode())
        h.update(np.ascontiguousarray(np.asarray(data[key])).tobytes())
    h.update(np.asarray(z0).tobytes())
    return h.hexdigest()


def save_checkpoint(path, tree, iteration: int, fingerprint: str):
    """Write ``tree`` (any pytree of arrays) and the iteration count atomically to ``path`` (.npz)."""
    leaves = jax.tree_util.tree_leaves(tree)
    path = os.fspath(path)
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".ckpt-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, iteration=np.int64(iteration), fingerprint=np.array(fingerprint),
                     **{f"leaf_{i}": np.asarray(x) for i, x in enumerate(leaves)})
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_checkpoint(path, like, fingerprint: str):
    """The tree saved at ``path`` (structure of ``like``) and its iteration, or ``None`` if absent.
    A checkpoint of another problem/data/options raises ``ValueError``."""
    if not os.path.exists(path):
        return None
    with np.load(path) as f:
        if str(f["fingerprint"]) != fingerprint:
            raise ValueError(f"checkpoint {path} belongs to another fit (problem, data, starts or options differ)")
        leaves, treedef = jax.tree_util.tree_flatten(like)
        new = [jnp.asarray(f[f"leaf_{i}"], dtype=np.asarray(x).dtype) for i, x in enumerate(leaves)]
        return jax.tree_util.tree_unflatten(treedef, new), int(f["iteration"])


def fit_individuals(problem: FitProblem, data: Mapping[str, np.ndarray], *, subjects=None, n_starts: int = 1,
                    start_sd: float = 0.5, max_iter: int = 300, gtol: float = 1e-6, ftol: float = 1e-6,
                    seed: int = 0, checkpoint=None, checkpoint_every: int = 50, stop_after: int | None = None,
                    rse_max: float = 0.3, shrinkage_max: float = 0.5, batch_size: int = 64) -> FitResult:
    """Fit every subject (leading axis of each ``data`` array) in one vmapped job; see the module doc.

    ``stop_after`` (iterations) stops early after writing the checkpoint, as a killed run would
    (used to test resume); the returned result then reflects the unfinished state. Subjects run in
    vmapped batches of ``batch_size`` (the last one padded), one compiled function for all: a vmapped
    line search runs until its slowest member is done, so one huge batch wastes work.
    """
    data = {k: jnp.asarray(v, float) for k, v in data.items()}
    S = {int(v.shape[0]) for v in data.values()}
    if (POP_MEAN in data) != (POP_WHITEN in data):
        raise ValueError(f"give both {POP_MEAN!r} and {POP_WHITEN!r} in data, or neither")
    if len(S) != 1:
        raise ValueError(f"every data array needs the same leading (subject) axis; got {sorted(S)}")
    S = S.pop()
    for e in problem.errors:
        if e.observable not in data:
            raise ValueError(f"data has no observable {e.observable!r} (expected unit {e.unit}); got {sorted(data)}")
    if n_starts < 1 or max_iter < 1 or checkpoint_every < 1:
        raise ValueError("n_starts, max_iter and checkpoint_every must be ≥ 1")
    if batch_size < 1:
        raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
    P = len(problem.params)
    B = min(batch_size, S)
    n_batches = -(-S // B)
    pad = n_batches * B - S
    data_p = {k: jnp.concatenate([v, jnp.repeat(v[-1:], pad, axis=0)]) if pad else v for k, v in data.items()}
    z0 = np.broadcast_to(np.asarray(problem.z_init()), (S, n_starts, P)).copy()
    if n_starts > 1:
        z0[:, 1:, :] += start_sd * np.random.default_rng(seed).standard_normal((S, n_starts - 1, P))
    z = jnp.asarray(np.concatenate([z0, np.repeat(z0[-1:], pad, axis=0)]) if pad else z0)
    state = jax.vmap(jax.vmap(_OPT.init))(z)
    done = jnp.zeros((S + pad, n_starts), bool)
    iters = jnp.zeros((S + pad, n_starts), jnp.int32)
    k = int(min(checkpoint_every, max_iter))
    chunk = _make_chunk(problem, gtol, k)
    it = 0
    fp = None
    if checkpoint is not None:
        fp = _fingerprint(problem, data, z0) + f"|{max_iter}|{gtol}|{k}|{B}"
        loaded = load_checkpoint(checkpoint, (z, state, done, iters), fp)
        if loaded is not None:
            (z, state, done, iters), it = loaded
    while it < max_iter and not bool(jnp.all(done)):
        parts = []
        for b in range(n_batches):
            sl = slice(b * B, (b + 1) * B)
            take = lambda a: a[sl]  # noqa: E731
            parts.append(chunk(z[sl], jax.tree_util.tree_map(take, state), done[sl], iters[sl],
                               {kk: v[sl] for kk, v in data_p.items()}))
        z, state, done, iters = jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs), *parts)
        it += k
        if checkpoint is not None:
            save_checkpoint(checkpoint, (z, state, done, iters), it, fp)
        if stop_after is not None and it >= stop_after:
            break
    z, done, iters = z[:S], done[:S], iters[:S]
    return _finish(problem, data, z, done, iters, subjects if subjects is not None else list(range(S)),
                   n_starts, ftol, rse_max, shrinkage_max)


@functools.lru_cache(maxsize=32)
def _compiled(problem: FitProblem):
    """(objective per subject and start, Jacobian of the residuals per subject), jitted once per problem."""
    return (jax.jit(jax.vmap(jax.vmap(problem.loss, in_axes=(0, None)))),
            jax.jit(jax.vmap(jax.jacrev(problem.residuals))))  # reverse mode: diffrax solves too


def _finish(problem, data, z, done, iters, subjects, n_starts, ftol, rse_max, shrinkage_max):
    objective, jacobian = _compiled(problem)
    obj = np.asarray(objective(z, data))
    obj = np.where(np.isfinite(obj), obj, np.inf)
    best = np.argmin(obj, axis=1)
    S = obj.shape[0]
    zb = np.asarray(z)[np.arange(S), best]
    at_best = np.sum(obj - obj[np.arange(S), best][:, None] <= ftol * np.maximum(1.0, np.abs(obj[np.arange(S), best]))[:, None], axis=1)
    J = np.asarray(jacobian(jnp.asarray(zb), data))
    H = np.einsum("snp,snq->spq", J, J)
    P = zb.shape[1]
    cov = np.full_like(H, np.nan)
    for s in range(S):
        if np.all(np.isfinite(H[s])) and np.linalg.cond(H[s]) < 1e14:
            cov[s] = np.linalg.inv(H[s])
    sd_z = np.sqrt(np.clip(np.diagonal(cov, axis1=1, axis2=2), 0, None))
    est = np.stack([np.asarray(p.from_z(zb[:, i])) for i, p in enumerate(problem.params)], axis=1)
    se = np.stack([sd_z[:, i] * np.abs(np.asarray(p.dtheta_dz(est[:, i]))) for i, p in enumerate(problem.params)], axis=1)
    prior_sd = np.array([p.prior_sd if p.prior_sd is not None else np.nan for p in problem.params])
    shrink = sd_z ** 2 / prior_sd ** 2
    conv = np.asarray(done)[np.arange(S), best] & np.isfinite(obj[np.arange(S), best])
    return FitResult(problem, list(subjects), zb, est, se, shrink, cov, obj[np.arange(S), best], conv,
                     np.asarray(iters)[np.arange(S), best], at_best, n_starts, rse_max, shrinkage_max)


# ---------------------------------------------------------------------------------------------
# Hierarchical (population) fit


@dataclass
class PopulationFit:
    """Population mean (at the reference covariates), covariance Ω and covariate effects β of the
    unconstrained parameters, and the individual (empirical Bayes) fit under the final population prior."""

    problem: FitProblem
    covariate_names: list
    beta: np.ndarray  # (1 + C, P): intercept row (z at the covariate means), then one row per covariate
    omega: np.ndarray  # (P, P) covariance of the random effects in z
    individuals: FitResult
    n_iterations: int
    history: list  # per EM iteration: max |Δβ|, max |Δ log diag Ω|

    def table(self) -> pd.DataFrame:
        """Per parameter: typical value (θ at the mean covariates), between-subject SD of z (≈ CV for
        log), and each covariate effect on z (per covariate unit)."""
        rows = []
        for i, p in enumerate(self.problem.params):
            row = {"parameter": p.name, "unit": p.unit, "typical_value": float(p.from_z(self.beta[0, i])),
                   "omega_sd_z [1]": float(np.sqrt(self.omega[i, i]))}
            for c, name in enumerate(self.covariate_names):
                row[f"effect_{name} [z per unit]"] = float(self.beta[1 + c, i])
            rows.append(row)
        return pd.DataFrame(rows)

    def correlation(self) -> pd.DataFrame:
        sd = np.sqrt(np.diag(self.omega))
        return pd.DataFrame(self.omega / np.outer(sd, sd), index=self.problem.names, columns=self.problem.names)


def fit_population(problem: FitProblem, data: Mapping[str, np.ndarray], *, covariates: pd.DataFrame | None = None,
                   n_iterations: int = 30, tol: float = 1e-3, omega_init_sd: float = 1.0, **fit_kw) -> PopulationFit:
    r"""Hierarchical fit: ``z_i = β₀ + βᵀ(c_i − c̄) + η_i``, ``η_i ~ N(0, Ω)`` (full covariance).

    Method: expectation–maximisation with a Laplace E-step (a documented approximation, as in
    Laplacian EM / FOCE-type NLME methods). Each iteration fits every subject (vmapped, MAP) under the
    current population prior — passed as data, so nothing recompiles — giving the mode ẑ_i and the
    Laplace covariance C_i; then the M-step sets β by least squares of ẑ on the centred covariates
    and ``Ω = mean_i[(ẑ_i − μ_i)(ẑ_i − μ_i)ᵀ + C_i]``. Stops when β and log diag Ω change by less
    than ``tol``. The Params' own priors only seed the first iteration (their medians/SDs; ``init``
    and ``omega_init_sd`` where none). Standard errors of β and Ω are not computed.
    """
    data = {k: np.asarray(v, float) for k, v in data.items()}
    S = int(next(iter(data.values())).shape[0])
    P = len(problem.params)
    if covariates is not None:
        if len(covariates) != S:
            raise ValueError(f"covariates has {len(covariates)} rows; data has {S} subjects")
        X = covariates.to_numpy(float)
        if not np.all(np.isfinite(X)):
            raise ValueError("covariates must be finite (no missing values)")
        names = [str(c) for c in covariates.columns]
        Xc = X - X.mean(0)
    else:
        names, Xc = [], np.zeros((S, 0))
    D = np.concatenate([np.ones((S, 1)), Xc], axis=1)
    beta = np.zeros((D.shape[1], P))
    has, mu0, sd0 = problem._prior()
    beta[0] = np.where(has, mu0, np.asarray(problem.z_init()))
    omega = np.diag(np.where(has, sd0, omega_init_sd) ** 2)
    history = []
    res = None
    for it in range(1, n_iterations + 1):
        mu_i = D @ beta
        W = np.linalg.inv(np.linalg.cholesky(omega))
        d = {**data, POP_MEAN: mu_i, POP_WHITEN: np.broadcast_to(W, (S, P, P))}
        res = fit_individuals(problem, d, **fit_kw)
        zhat = res.z
        C = np.where(np.isfinite(res.covariance_z), res.covariance_z, 0.0)
        new_beta = np.linalg.lstsq(D, zhat, rcond=None)[0]
        e = zhat - D @ new_beta
        new_omega = (e.T @ e + C.sum(0)) / S
        new_omega = 0.5 * (new_omega + new_omega.T) + 1e-10 * np.eye(P)
        change = (float(np.max(np.abs(new_beta - beta))),
                  float(np.max(np.abs(np.log(np.diag(new_omega)) - np.log(np.diag(omega))))))
        history.append(change)
        beta, omega = new_beta, new_omega
        if max(change) < tol:
            break
    # individual estimates under the final population prior
    mu_i = D @ beta
    W = np.linalg.inv(np.linalg.cholesky(omega))
    res = fit_individuals(problem, {**data, POP_MEAN: mu_i, POP_WHITEN: np.broadcast_to(W, (S, P, P))}, **fit_kw)
    return PopulationFit(problem, names, beta, omega, res, it, history)


# ---------------------------------------------------------------------------------------------
# Tidy data with units in the column names

_COL = re.compile(r"^\s*(?P<name>[^\[\]]+?)\s*\[(?P<unit>[^\[\]]+)\]\s*$")


def parse_column(col: str):
    """``"glucose [mg/dL]"`` → ``("glucose", "mg/dL")``; a name without unit gives ``(name, None)``."""
    m = _COL.match(col)
    return (m["name"], m["unit"]) if m else (col.strip(), None)


def check_units(df: pd.DataFrame, expected: Mapping[str, str]) -> None:
    """Every ``name`` of ``expected`` must be a column ``"name [unit]"`` with exactly that unit."""
    found = {}
    for c in df.columns:
        n, u = parse_column(str(c))
        found.setdefault(n, []).append((c, u))
    for name, unit in expected.items():
        want = f"{name} [{unit}]"
        if name not in found:
            raise ValueError(f"missing column {want!r}; got {list(df.columns)}")
        cols = found[name]
        if not any(u == unit for _, u in cols):
            got = ", ".join(repr(c) for c, _ in cols)
            raise ValueError(f"column {got} has the wrong unit: expected {want!r} (unit {unit}); convert the data first")


def tidy_to_arrays(df: pd.DataFrame, observables: Mapping[str, str], *, subject_col: str = "subject",
                   time_col: str = "time [min]", times=None):
    """Long table (one row per subject and sample time) → ``(subjects, times, {name: (S, T) array})``.

    ``observables`` maps name → unit (e.g. ``{"glucose": "mg/dL"}``); columns are checked with
    :func:`check_units`. Samples are placed on the union of times (or ``times``); absent ones are NaN.
    """
    if subject_col not in df.columns:
        raise ValueError(f"missing column {subject_col!r}; got {list(df.columns)}")
    check_units(df, {parse_column(time_col)[0]: parse_column(time_col)[1], **observables})
    t = np.asarray(sorted(df[time_col].unique()) if times is None else times, float)
    subjects = list(dict.fromkeys(df[subject_col]))
    s_idx = {s: i for i, s in enumerate(subjects)}
    t_idx = {float(v): i for i, v in enumerate(t)}
    out = {n: np.full((len(subjects), len(t)), np.nan) for n in observables}
    rows = df[subject_col].map(s_idx).to_numpy()
    cols = np.array([t_idx.get(float(v), -1) for v in df[time_col]])
    if np.any(cols < 0):
        raise ValueError(f"{time_col!r} has times outside the requested grid {t.tolist()}")
    for n, u in observables.items():
        v = pd.to_numeric(df[f"{n} [{u}]"], errors="coerce").to_numpy(float)
        if np.any(v[np.isfinite(v)] < 0):
            raise ValueError(f"column '{n} [{u}]' has negative values; allowed range ≥ 0")
        out[n][rows, cols] = v
    return subjects, t, out
