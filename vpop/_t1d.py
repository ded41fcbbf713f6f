"""Type 1 diabetes: the 30 public UVA/Padova 2008 virtual patients and insulin protocols.

The patients are the "academic" cohort distributed with simglucose (MIT licence, copied with
attribution in ``vpop/data/uva_padova_2008/``): 10 adolescents, 10 adults, 10 children, with their
Quest data (carbohydrate ratio CR [g/U], correction factor CF [mg/dL/U], age, total daily insulin).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources
from typing import Sequence

import jax.numpy as jnp
import numpy as np
import pandas as pd

from .models._uvapadova2008 import PARAMETER_SPECS, UvaPadova2008, UvaPadovaInputs, UvaPadovaState

#: simglucose column → vpop parameter name
_COLUMN_OF = {"VG": "Vg", "VI": "Vi"}
#: simglucose initial-state columns x0_1 … x0_13, in model order
_X0_COLUMNS = ["x0_ 1", "x0_ 2", "x0_ 3", "x0_ 4", "x0_ 5", "x0_ 6", "x0_ 7", "x0_ 8", "x0_ 9", "x0_10", "x0_11", "x0_12", "x0_13"]


def _read(name: str) -> pd.DataFrame:
    with (resources.files("vpop") / "data" / "uva_padova_2008" / name).open("r") as f:
        return pd.read_csv(f)


def patient_table() -> pd.DataFrame:
    """The 30 patients: name, group, every parameter and Quest column (CR [g/U], CF [mg/dL/U], age [y], TDI [U])."""
    params = _read("vpatient_params.csv")
    quest = _read("Quest.csv")
    df = params.merge(quest, on="Name", how="left", validate="one_to_one")
    df.insert(1, "group", df["Name"].str.split("#").str[0])
    return df


def load_patients(names: Sequence[str] | None = None, *, dtype=jnp.float64):
    """The public UVA/Padova 2008 patients as a population.

    Returns ``(model, params, y0, table)``: params with leaves of shape ``(n,)``, the published
    initial (basal) states ``y0``, and the table of names and Quest data (CR, CF, TDI, age).

    Example:
        >>> import vpop
        >>> model, params, y0, table = vpop.load_patients(["adult#001", "child#003"])
        >>> list(table["Name"])
        ['adult#001', 'child#003']
    """
    df = patient_table()
    if names is not None:
        unknown = sorted(set(names) - set(df["Name"]))
        if unknown:
            raise ValueError(f"unknown patient(s) {unknown}; available: {list(df['Name'])}")
        df = df.set_index("Name").loc[list(names)].reset_index()
    values = {k: df[_COLUMN_OF.get(k, k)].to_numpy(float) for k in PARAMETER_SPECS}
    model = UvaPadova2008()
    params = model.Params.from_dict(values, dtype=dtype)
    x0 = df[_X0_COLUMNS].to_numpy(float)
    zero = jnp.zeros(len(df), dtype)
    y0 = UvaPadovaState(*[jnp.asarray(x0[:, i], dtype) for i in range(13)], zero, zero)
    return model, params, y0, df.reset_index(drop=True)


@dataclass(frozen=True)
class InsulinProtocol:
    """Per-interval inputs of a T1D simulation: eating rate [g/min] and insulin delivery [U/min].

    Build one with :meth:`replay` (given per-interval arrays) or :meth:`open_loop` (meals eaten at
    ``eat_rate_g_per_min``, basal [U/h] and boluses [U]).

    Attributes:
        carbs_g_per_min: shape ``(T,)`` or ``(n, T)``, T = number of output intervals.
        insulin_u_per_min: shape ``(T,)`` or ``(n, T)``.
        save_every_min: output step [min]; inputs are constant over each step.
    """

    carbs_g_per_min: np.ndarray
    insulin_u_per_min: np.ndarray
    save_every_min: float = 1.0
    name: str = "t1d"
    kind: str = "t1d"

    def __post_init__(self):
        c = np.asarray(self.carbs_g_per_min, float)
        i = np.asarray(self.insulin_u_per_min, float)
        for label, a in (("carbs_g_per_min", c), ("insulin_u_per_min", i)):
            if a.ndim not in (1, 2):
                raise ValueError(f"{label} must have shape (T,) or (n_people, T), got {a.shape}")
            if not np.all(np.isfinite(a)) or np.any(a < 0):
                raise ValueError(f"{label} must be finite and ≥ 0")
        if c.shape[-1] != i.shape[-1]:
            raise ValueError(f"carbs_g_per_min has {c.shape[-1]} intervals, insulin_u_per_min {i.shape[-1]}")
        object.__setattr__(self, "carbs_g_per_min", c)
        object.__setattr__(self, "insulin_u_per_min", i)

    @property
    def n_intervals(self) -> int:
        return int(self.carbs_g_per_min.shape[-1])

    @property
    def duration_min(self) -> float:
        return self.n_intervals * self.save_every_min

    @property
    def duration_days(self) -> float:
        return self.duration_min / 1440.0

    @property
    def time_min(self) -> np.ndarray:
        return np.arange(self.n_intervals + 1) * self.save_every_min

    @property
    def meals(self) -> tuple:
        return ()

    def inputs(self, n_people: int) -> UvaPadovaInputs:
        for a in (self.carbs_g_per_min, self.insulin_u_per_min):
            if a.ndim == 2 and a.shape[0] != n_people:
                raise ValueError(f"protocol has inputs for {a.shape[0]} people, the population has {n_people}")
        return UvaPadovaInputs(self.carbs_g_per_min, self.insulin_u_per_min)

    def total_carbs_g(self) -> np.ndarray:
        return self.carbs_g_per_min.sum(axis=-1) * self.save_every_min

    def total_insulin_u(self) -> np.ndarray:
        return self.insulin_u_per_min.sum(axis=-1) * self.save_every_min

    @classmethod
    def replay(cls, carbs_g_per_min, insulin_u_per_min, save_every_min: float = 1.0) -> "InsulinProtocol":
        """Inputs given per interval (e.g. recorded from another simulator or a pump log)."""
        return cls(np.asarray(carbs_g_per_min), np.asarray(insulin_u_per_min), save_every_min, name="replay")
