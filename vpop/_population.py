"""Populations: parameter pytrees with a leading person axis, sampled around a parameter set.

Variation is multiplicative: for a parameter θ with base value θ₀ and coefficient of variation
``cv``, ``log θ = log θ₀ + σ·z`` with ``σ = sqrt(log(1 + cv²))`` so that θ₀ is the population
**median** and ``cv`` is the CV of θ. Parameters bounded to (0, 1) (fractions such as ``f`` or
``HEb``) vary on the logit scale instead, with ``σ = cv/(1 − θ₀)`` (the delta-method equivalent),
so they stay inside their range. ``z`` is standard normal with the given correlation matrix.

If the parameter set derives its basal state from the rate constants (``basal: derived``), the
basal values are re-derived **per person** after sampling, so everyone starts at their own steady
state.

Plausibility: a sampled person is kept only if every parameter, derived basal values included, is
finite and inside the valid range of its :class:`~vpop.ParamSpec` (so a basal steady state exists
with positive secretion and insulin); others are rejected and redrawn (rejection sampling, so the
kept cohort follows the sampling distribution truncated to the valid region). If fewer than 1 in
20 candidates is valid, ``ValueError`` names the parameters most often out of range.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._engine import select_people
from ._parameters import load_parameter_set
from ._sets import parameters_from_set


def correlation_matrix(names: Sequence[str], correlations: Mapping[tuple[str, str], float] | None) -> np.ndarray:
    """Correlation matrix over ``names`` from ``{(a, b): rho}`` pairs (checked positive definite)."""
    k = len(names)
    C = np.eye(k)
    index = {n: i for i, n in enumerate(names)}
    for (a, b), rho in (correlations or {}).items():
        for x in (a, b):
            if x not in index:
                raise ValueError(f"correlation names {x!r}, which has no cv; varied parameters: {list(names)}")
        if a == b or not (-1.0 < float(rho) < 1.0):
            raise ValueError(f"correlation ({a}, {b}) = {rho} must be in (-1, 1) between two different parameters")
        C[index[a], index[b]] = C[index[b], index[a]] = float(rho)
    if k and np.linalg.eigvalsh(C).min() <= 0:
        raise ValueError(f"correlation matrix over {list(names)} is not positive definite")
    return C


def sample_population(
    parameter_set: str,
    n_people: int,
    *,
    cv: Mapping[str, float] | None = None,
    correlations: Mapping[tuple[str, str], float] | None = None,
    overrides: Mapping[str, float] | None = None,
    seed: int = 0,
    dtype=jnp.float64,
):
    """Sample ``n_people`` people around a named parameter set.

    Args:
        parameter_set: name of a shipped parameter set (e.g. ``"DallaMan2007_normal"``).
        n_people: cohort size.
        cv: coefficient of variation per parameter (``{"Vmx": 0.3, ...}``); parameters not named
            are the same for everybody.
        correlations: ``{("Vmx", "kp3"): 0.5, ...}`` between varied parameters (on the log/logit scale).
        overrides: replace base values before sampling.
        seed: random seed (same seed → same cohort).

    Returns:
        ``(model, params, initial_state_overrides)`` with every parameter leaf of shape ``(n_people,)``.

    Example:
        >>> import vpop
        >>> model, params, _ = vpop.sample_population("DallaMan2007_normal", 4, cv={"Vmx": 0.3}, seed=1)
        >>> params.Vmx.shape
        (4,)
    """
    if int(n_people) < 1:
        raise ValueError(f"n_people={n_people} must be ≥ 1")
    n = int(n_people)
    model, base, init = parameters_from_set(parameter_set, overrides, dtype=dtype)
    specs = model.parameter_specs
    cv = dict(cv or {})
    derived = load_parameter_set(parameter_set).basal == "derived"
    for name, c in cv.items():
        if name not in specs:
            raise ValueError(f"cv: unknown parameter {name!r}; allowed: {sorted(specs)}")
        if derived and name in ("Gb", "Ib", "Sb"):
            raise ValueError(f"cv: {name!r} is derived from the rate constants in {parameter_set}; vary those instead")
        if not (0.0 <= float(c) <= 3.0):
            raise ValueError(f"cv.{name} = {c} is outside the allowed range [0, 3]")
    names = sorted(cv)
    C = correlation_matrix(names, correlations)
    L = np.linalg.cholesky(C) if names else np.zeros((0, 0))
    rng = np.random.default_rng(seed)

    def draw(m):
        z = rng.standard_normal((m, len(names))) @ L.T if names else np.zeros((m, 0))
        values = {k: np.full(m, float(getattr(base, k))) for k in specs}
        for j, name in enumerate(names):
            theta0 = float(getattr(base, name))
            c = float(cv[name])
            if specs[name].fraction:
                sigma = c / (1.0 - theta0)
                logit = np.log(theta0 / (1.0 - theta0)) + sigma * z[:, j]
                values[name] = 1.0 / (1.0 + np.exp(-logit))
            else:
                sigma = np.sqrt(np.log1p(c * c))
                values[name] = theta0 * np.exp(sigma * z[:, j])
        p = model.Params(**{k: jnp.asarray(v, dtype) for k, v in values.items()})
        if derived:
            p = _derive_basal_batched(model, p)  # per person: one scalar Newton solve each
        return p

    # Rejection sampling: a person is kept only if every parameter, derived basal values included,
    # is finite and inside its valid range (e.g. HEb > m6 would give a negative basal secretion).
    kept, n_kept, n_drawn = [], 0, 0
    rejected_by = dict.fromkeys(specs, 0)
    for _ in range(_MAX_ROUNDS):
        # host (numpy) arrays from here on: selecting a varying number of kept people must not
        # compile a gather for every new shape (streamed cohorts sample block after block)
        p = jax.tree_util.tree_map(np.asarray, draw(n))
        n_drawn += n
        ok = np.ones(n, bool)
        for k, spec in specs.items():
            bad = ~spec.valid(np.asarray(getattr(p, k)))
            rejected_by[k] += int(bad.sum())
            ok &= ~bad
        idx = np.flatnonzero(ok)[: n - n_kept]
        if idx.size:
            kept.append(select_people(p, idx))
            n_kept += idx.size
        if n_kept == n:
            break
    else:
        worst = sorted(((v, k) for k, v in rejected_by.items() if v), reverse=True)[:3]
        raise ValueError(
            f"sample_population({parameter_set!r}): only {n_kept} of {n_drawn} sampled people had all "
            f"parameters in range; most often out of range: "
            + ", ".join(f"{k} ({v}×, valid {specs[k].range_text()})" for v, k in worst)
            + ". Reduce the cv of the parameters that drive them."
        )
    params = jax.tree_util.tree_map(lambda *a: jnp.asarray(np.concatenate(a)), *kept)
    return model, params, init


#: Rounds of rejection sampling before giving up (each round draws n_people candidates).
_MAX_ROUNDS = 20


@eqx.filter_jit
def _derive_basal_batched(model, params):
    return jax.vmap(model.derive_basal)(params)
