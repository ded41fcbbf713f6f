r"""Glycaemic outcome metrics per person (pure functions of glucose traces on a uniform grid).

Consensus targets (Battelino et al., Diabetes Care 2019;42:1593): time in range 70–180 mg/dL,
below 70 and 54, above 180 and 250 (as % of samples); mean, SD, coefficient of variation
(CV = SD/mean); glucose management indicator GMI [%] = 3.31 + 0.02392·mean [mg/dL]
(Bergenstal et al., Diabetes Care 2018;41:2275).

Kovatchev risk (Kovatchev et al., Diabetes Care 1997;20:1655):
:math:`f(G) = 1.509\,[(\ln G)^{1.084} - 5.381]`, :math:`r = 10 f^2`; LBGI is the mean over **all**
samples of :math:`r` where :math:`f < 0` (0 elsewhere), HBGI likewise for :math:`f > 0`, risk index
= LBGI + HBGI. Glucose is clipped to [20, 600] mg/dL first. (simglucose 0.2.11 averages only over
the samples on each side, which overstates both indices; vpop follows the paper.)

Range conventions: in range means 70 ≤ G ≤ 180; below 70 means G < 70; above 180 means G > 180.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pandas as pd


def kovatchev_f(glucose_mg_per_dl):
    g = jnp.clip(glucose_mg_per_dl, 20.0, 600.0)
    return 1.509 * (jnp.log(g) ** 1.084 - 5.381)


def lbgi_hbgi(glucose_mg_per_dl):
    """``(LBGI, HBGI)`` along the last axis."""
    f = kovatchev_f(glucose_mg_per_dl)
    r = 10.0 * f * f
    return jnp.mean(jnp.where(f < 0, r, 0.0), axis=-1), jnp.mean(jnp.where(f > 0, r, 0.0), axis=-1)


def glycemic_metrics(glucose_mg_per_dl) -> dict[str, jnp.ndarray]:
    """All consensus metrics along the last axis (samples equally spaced in time)."""
    g = jnp.asarray(glucose_mg_per_dl)
    pct = lambda m: 100.0 * jnp.mean(m, axis=-1)  # noqa: E731
    mean = jnp.mean(g, axis=-1)
    sd = jnp.std(g, axis=-1, ddof=1)
    lbgi, hbgi = lbgi_hbgi(g)
    return {
        "time_in_range_70_180 [%]": pct((g >= 70.0) & (g <= 180.0)),
        "time_below_70 [%]": pct(g < 70.0),
        "time_below_54 [%]": pct(g < 54.0),
        "time_above_180 [%]": pct(g > 180.0),
        "time_above_250 [%]": pct(g > 250.0),
        "mean_glucose [mg/dL]": mean,
        "sd_glucose [mg/dL]": sd,
        "cv_glucose [%]": 100.0 * sd / mean,
        "gmi [%]": 3.31 + 0.02392 * mean,
        "lbgi [1]": lbgi,
        "hbgi [1]": hbgi,
        "risk_index [1]": lbgi + hbgi,
        "min_glucose [mg/dL]": jnp.min(g, axis=-1),
        "max_glucose [mg/dL]": jnp.max(g, axis=-1),
    }


def glycemic_table(glucose_mg_per_dl, index=None) -> pd.DataFrame:
    """:func:`glycemic_metrics` as a DataFrame, one row per person."""
    return pd.DataFrame({k: np.asarray(v, dtype=float) for k, v in glycemic_metrics(glucose_mg_per_dl).items()}, index=index)
