"""What every model shares: parameter modules built from validated mappings, initial states."""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import equinox as eqx
import jax.numpy as jnp

from .._parameters import ParamSpec, check_parameters


class AbstractParams(eqx.Module):
    """A model's parameters: every field an array (scalar for one person, ``(n_people,)`` for a
    population); units and ranges in the class's ``specs`` table."""

    specs: ClassVar[dict[str, ParamSpec]]
    model_name: ClassVar[str]

    @classmethod
    def from_dict(cls, values, *, validate: bool = True, dtype=jnp.float64):
        """Build parameters from ``{name: value}`` (scalars or per-person arrays), checking names
        and ranges first (``ValueError`` naming the field and its valid range)."""
        if validate:
            check_parameters(values, cls.specs, where=cls.model_name)
        return cls(**{k: jnp.asarray(values[k], dtype=dtype) for k in cls.specs})

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.specs}

    @property
    def n_people(self) -> int | None:
        """Size of the leading person axis, or ``None`` for a single person."""
        shape = jnp.shape(self.BW)
        return shape[0] if shape else None


class AbstractModel(eqx.Module):
    """A model: ``State``/``Params``/``Inputs`` types, ``vector_field``, ``basal_state``, ``at_node``."""

    def initial_state(self, p, overrides: dict | None = None):
        """Basal state, with optional explicit values (state name → value) replacing entries."""
        y = self.basal_state(p)
        if overrides:
            fields = list(self.State._fields)
            unknown = set(overrides) - set(fields)
            if unknown:
                raise ValueError(f"initial_state: unknown state(s) {sorted(unknown)}; allowed: {fields}")
            dtype = jnp.result_type(p.VG)
            y = y._replace(**{k: jnp.broadcast_to(jnp.asarray(v, dtype), jnp.shape(p.VG)) for k, v in overrides.items()})
        return y


def concat_state(name: str, doc: str, *parts) -> type:
    """A model state (``NamedTuple``) whose fields are those of ``parts`` (state classes), in order:
    a coupled model's state is its parents' states side by side."""
    fields = [f for part in parts for f in part._fields]
    if len(set(fields)) != len(fields):
        raise ValueError(f"{name}: duplicate state names in {[p.__name__ for p in parts]}")
    cls = NamedTuple(name, [(f, object) for f in fields])
    cls.__doc__ = doc
    return cls
