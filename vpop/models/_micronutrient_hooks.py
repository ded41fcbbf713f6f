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
effect on secretion. The two orders differ more than one might expect. Measured with
:func:`~vpop.models._betacell.dallaman_secretion_map` on the Dalla Man normal subject (Gb 91.8 mg/dL;
default beta cell; each hook × 0.8; change of the mapped Dalla Man secretion parameters):

=============  ==============================  ==========================================
hook × 0.8     after capacity (unbuffered)     before capacity (basal secretion kept)
=============  ==============================  ==========================================
magnesium      Sb −44.6%, β −16.8%, K −20.4%   Sb 0, **β +50.2%, K +43.7%**
zinc           Sb, β, K −20.0%                 no effect (secretion is linear in capacity)
vitamin_d      Sb −16.6%, β −14.1%, K −13.3%   Sb 0, β +3.0%, K +4.0%
=============  ==============================  ==========================================

With the basal secretion kept, a magnesium deficit moves the K_ATP closure curve to higher glucose,
so the capacity that restores basal secretion makes the response to a rise *steeper*: the hooks
are not monotone "less function" knobs once capacity compensates. Nor is there a simple inverse
map from a person's Dalla Man ``beta`` to one mechanistic parameter. With capacity derived from
basal secretion, the mapped β is non-monotone in ``atp_adp_gain``, ``katp_half_atp_adp`` and
``gk_s05``, and nearly flat in ``ca_gain``. So the population's ``vitamin_d_status`` effect (on
aggregate beta-cell function) is not yet routed through ``ca_gain`` in sampled cohorts: a
mechanistic cohort gets each person's Dalla Man basal state, with the default beta cell scaled to
it (:meth:`~vpop.models.DallaMan2007Mechanistic.make_params`).
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
