"""Unit conventions used everywhere inside vpop, and the conversions at the edges.

Inside vpop (DESIGN §3):

* glucose concentration: mg/dL; glucose masses: mg (gut) or mg/kg (body compartments)
* insulin concentration: pmol/L; insulin masses: pmol/kg
* carbohydrate: g at the public edge, mg inside the gut model
* time: min for the fast (meal/day) models, days for slow models

The one insulin conversion factor used by vpop is ``PMOL_PER_L_PER_UU_PER_ML = 6.0``
(1 µU/mL = 6.0 pmol/L, the factor of SCIENCE.md and of the Dalla Man group). Some labs
use 6.945; convert with your own factor before passing data if that is what you need.
"""

from __future__ import annotations

#: 1 µU/mL of insulin expressed in pmol/L (the single factor used by vpop).
PMOL_PER_L_PER_UU_PER_ML: float = 6.0
#: 1 mmol/L of glucose expressed in mg/dL (molar mass 180.16 g/mol).
MG_PER_DL_PER_MMOL_PER_L: float = 18.016
#: 1 U of insulin in pmol.
PMOL_PER_U: float = 6000.0
#: mg per g.
MG_PER_G: float = 1000.0
#: minutes per day.
MIN_PER_DAY: float = 1440.0


def pmol_per_l_to_uu_per_ml(x):
    """Insulin pmol/L → µU/mL (factor 6.0)."""
    return x / PMOL_PER_L_PER_UU_PER_ML


def uu_per_ml_to_pmol_per_l(x):
    """Insulin µU/mL → pmol/L (factor 6.0)."""
    return x * PMOL_PER_L_PER_UU_PER_ML


def mg_per_dl_to_mmol_per_l(x):
    """Glucose mg/dL → mmol/L."""
    return x / MG_PER_DL_PER_MMOL_PER_L


def mmol_per_l_to_mg_per_dl(x):
    """Glucose mmol/L → mg/dL."""
    return x * MG_PER_DL_PER_MMOL_PER_L
