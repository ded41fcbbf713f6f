"""Turn a named parameter set into a (model, parameters, initial-state overrides) triple."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Mapping

import jax.numpy as jnp

from ._parameters import check_parameters, load_parameter_set
from .models import MODELS

_BASAL_NAMES = ("Gb", "Ib", "Sb")


def build_model(name: str, options: Mapping[str, Any] | None = None):
    """Instantiate a model by name with structural options."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; available: {sorted(MODELS)}")
    try:
        return MODELS[name](**dict(options or {}))
    except TypeError as e:  # unknown option
        raise ValueError(f"model {name!r}: bad model option ({e})") from None


def parameters_from_set(
    name: str,
    overrides: Mapping[str, float] | None = None,
    *,
    model_options: Mapping[str, Any] | None = None,
    dtype=jnp.float64,
):
    """Load parameter set ``name`` with optional value ``overrides``.

    Returns ``(model, params, initial_state_overrides)``. For sets with ``basal: derived`` the
    basal values ``Gb``, ``Ib``, ``Sb`` are computed from the rate constants (after overrides), so the
    initial basal state is a steady state.
    """
    pset = load_parameter_set(name)
    options = dict(pset.model_options or {})
    options.update(model_options or {})
    # Cached on the set's content, the overrides, options and dtype: the basal solve below traces a
    # fresh scalar root find on every call, which would recompile each time a cohort is sampled.
    try:
        key = (name, json.dumps(dataclasses.asdict(pset), sort_keys=True),
               json.dumps({k: float(v) for k, v in (overrides or {}).items()}, sort_keys=True),
               json.dumps(options, sort_keys=True), jnp.dtype(dtype).name)
    except (TypeError, ValueError):  # non-JSON options or non-scalar overrides: no caching
        key = None
    if key is None or key not in _CACHE:
        result = _from_set(name, pset, overrides, options, dtype)
        if key is None:
            return result
        if len(_CACHE) >= 64:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = result
    model, params, init = _CACHE[key]
    return model, params, dict(init)


_CACHE: dict = {}


def _from_set(name, pset, overrides, options, dtype):
    model = build_model(pset.model, options)
    values = dict(pset.values)
    if overrides:
        check_parameters(overrides, model.parameter_specs, where=f"{name} overrides", require_all=False)
        values.update(overrides)
    if pset.basal == "derived":
        fixed = sorted(set(overrides or {}) & set(_BASAL_NAMES))
        if fixed:
            raise ValueError(
                f"{name}: {fixed} are derived from the rate constants in this set (basal: derived); "
                "override the rate constants instead"
            )
        placeholders = {"Gb": 100.0, "Ib": 50.0, "Sb": 1.0}  # replaced by derive_basal below
        for k in _BASAL_NAMES:
            values.setdefault(k, placeholders[k])
    params = model.Params.from_dict(values, dtype=dtype)
    if pset.basal == "derived":
        params = model.derive_basal(params)
        check_parameters({k: getattr(params, k) for k in _BASAL_NAMES}, model.parameter_specs,
                         where=f"{name} (derived basal)", require_all=False)
    return model, params, dict(pset.initial_state or {})
