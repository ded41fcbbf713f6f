r"""Micronutrient hooks on the mechanistic beta cell (issue 6; SCIENCE.md §2).

Each hook is a multiplier (1 = no effect) on the beta-cell parameter through which the literature
places the nutrient's action on secretion. The effect *sizes* are not known at this level
(SCIENCE.md §2 reports whole-body outcomes: T2D risk, HOMA-IR, FPG); the population's effect configs
(``vpop/populations/us_adults.yaml``: ``magnesium_intake``, ``zinc_deficiency``, ``vitamin_d_status``)
carry those priors, and a study that wants them to act through the mechanism passes each person's
multiplier here instead of (not in addition to) the aggregate ``beta_cell_function`` multiplier.

=============  ======================  ==========================================================
hook           parameter multiplied    mechanism (where the literature puts it)
=============  ======================  ==========================================================
magnesium      ``atp_adp_gain``        MgATP is the substrate of glucokinase and of glycolysis, and
                                       MgADP gates K_ATP: low Mg weakens the metabolic signal that
                                       closes K_ATP (Barbagallo & Dominguez 2007, Arch Biochem
                                       Biophys 458:40, review [R]). Mg on insulin *signalling*
                                       (tyrosine-kinase activity) is the population's
                                       ``insulin_sensitivity`` effect, not a beta-cell hook.
zinc           ``capacity``            Zn²⁺ crystallises insulin hexamers in the granule (ZnT8,
                                       SLC30A8): low zinc lowers the insulin stored per granule
                                       and so the resupply of releasable insulin (Chimienti 2004,
                                       Diabetes 53:2330 [R]).
vitamin_d      ``ca_gain``             the vitamin D receptor in beta cells regulates calbindin-D28k
                                       and L-type Ca²⁺ channel expression: deficiency lowers the
                                       depolarisation-evoked Ca²⁺ rise (Sooy 1999, Endocrinology
                                       140:5431 [R]; Altieri 2017 review).
=============  ======================  ==========================================================

Apply hooks *before* :func:`~vpop.models._betacell.capacity_for_basal` if the person's basal
secretion should stay fixed (compensation through capacity), or after it to see the unbuffered
effect on secretion.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from ._betacell import BetaCellParams

#: hook name → the beta-cell parameter it multiplies
MICRONUTRIENT_HOOKS: dict[str, str] = {
    "magnesium": "atp_adp_gain",
    "zinc": "capacity",
    "vitamin_d": "ca_gain",
}

#: Population effect (``us_adults.yaml`` name) → the hook through which it acts on secretion.
EFFECT_TO_HOOK: dict[str, str] = {
    "magnesium_intake": "magnesium",
    "zinc_deficiency": "zinc",
    "vitamin_d_status": "vitamin_d",
}

MULTIPLIER_RANGE = (0.0, 10.0)  # exclusive lower, inclusive upper


def apply_micronutrient_hooks(p: BetaCellParams, multipliers: dict) -> BetaCellParams:
    """``p`` with each named hook's parameter multiplied (``{hook: multiplier}``, scalars or one value
    per person; hooks :data:`MICRONUTRIENT_HOOKS`). ``ValueError`` naming the hook for an unknown
    hook or a multiplier outside (0, 10]."""
    for name, m in multipliers.items():
        if name not in MICRONUTRIENT_HOOKS:
            raise ValueError(f"unknown micronutrient hook {name!r}; allowed: {sorted(MICRONUTRIENT_HOOKS)}")
        a = np.asarray(m, dtype=float)
        lo, hi = MULTIPLIER_RANGE
        if np.any(~np.isfinite(a)) or np.any(a <= lo) or np.any(a > hi):
            raise ValueError(f"micronutrient hook {name!r}: multiplier must be within ({lo:g}, {hi:g}], got {m!r}")
    for name, m in multipliers.items():
        field = MICRONUTRIENT_HOOKS[name]
        old = getattr(p, field)
        p = eqx.tree_at(lambda q, f=field: getattr(q, f), p, old * jnp.asarray(m, dtype=jnp.result_type(old)))
    return p
