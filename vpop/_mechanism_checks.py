"""``vpop validate`` checks of the mechanistic modules (issue 6). Tolerances are the issue's.

``biphasic_secretion``
    The beta cell alone (defaults, capacity from the BIOMD0000000379 basal Gb = 95 mg/dL, Sb = 1.8
    pmol/kg/min) under a +125 mg/dL hyperglycaemic step clamp (DeFronzo, Tobin & Andres 1979) held
    120 min: the first-phase peak (the first local maximum, 0.1-min grid) lies within 2–10 min, secretion then falls
    to a nadir below the peak, and the second phase rises (nadir < 60 min < 120 min).
``katp_closure_secretion``
    At basal glucose, closing half of the K_ATP channels (``katp_block`` 0.5, sulfonylurea-like)
    raises secretion (steady state and mean over the first 60 min).
``mechanistic_secretion_meal``
    The Dalla Man 2007 model with the mechanistic secretion in place of its secretion block
    (:class:`vpop.models.DallaMan2007Mechanistic`, BIOMD0000000379 settings, reference engine) on
    the 78 g meal: glucose within 10 mg/dL and insulin within 20% of the reference curve
    (``dallaman2007_meal_BIOMD0000000379_part0_paper_eqs.csv``) at every minute of 0–420 min.
``liver_glycogen_meal``
    The liver (:mod:`vpop.models._liver`, driven by the Dalla Man 2007 normal subject's 78 g meal, from
    Taylor's overnight glycogen 207 mmol/L): glycogen peaks 4–6 h after the meal and net synthesis
    (peak − start) is 15–25% of the meal carbohydrate (Taylor 1996). The liver's parameters are fitted
    (``tools/calibrate_liver.py``) to other numbers (Taylor's direct-pathway share, the Dalla Man EGP,
    fasting EGP and glycogenolysis, and the direct-pathway glucose deposition over 0–6 h, 25% of the
    meal: 1/3 hepatic uptake × ~75% to glycogen, Winnick 2011/2013), not to these. Caveat: that last
    target was added in issue 6 after the net-synthesis row had failed and, with the Dalla Man EGP,
    it sets most of the net synthesis (net = ∫(direct uptake + GNG − EGP)): the net-synthesis row is
    not an independent validation. The peak time is not fitted (it comes from the delayed insulin
    activation of the direct pathway at Dalla Man's ``ki``), but that structure was chosen in issue 6
    with this row's band in view. The post-peak fall (Taylor 0.26 mmol/L/min) is reported, not
    reproduced.
``gluconeogenesis_fasting``
    The liver from an overnight fast (14 h) to 40 h at basal glucose and insulin: GNG (net of the
    indirect pathway) 45–65% of EGP at 14 h and > 80% at 40 h (Landau 1996, Rothman 1991). Validated,
    not calibrated: the fit (``tools/calibrate_liver.py``) uses Taylor's basal HGO 1.90 mg/kg/min at
    14 h, Landau's 22-h fraction (67%) and Rothman's net glycogenolysis (0.77 mg/kg/min), not these
    fractions; the 42-h value (Landau 93%) and Rothman's 22–36 h (82%) are reported.
``hypoglycaemia_counterregulation``
    Glucagon, epinephrine (:mod:`vpop.models._counterregulation`) and the liver under two
    hyperinsulinaemic clamps (insulin 420 pmol/L) from the Dalla Man 2007 normal basal state, glucose
    held at 50 mg/dL vs at basal: over 120–180 min, glucagon 2–5× basal, epinephrine > 5× basal
    (Mitrakou 1991 thresholds; Cryer review), EGP > 1.5× the euglycaemic clamp's and > 0.5× basal
    (Lecavalier 1989). The epinephrine gain is fitted to an independent clamp (Kerr 1989), so the
    epinephrine row is a validation; the glucagon gain is calibrated to the ~3× that the glucagon row
    tests (not a validation; :mod:`vpop.models._counterregulation` lists the conflicting independent
    numbers).
``exercise_t1d``
    UVA/Padova 2008 adults 1–5 with the Dalla Man, Breton & Cobelli 2009 exercise terms
    (:class:`vpop.models.UvaPadova2008Exercise`), basal insulin, no meals, the DirecNet protocol
    (4 × 15 min at 67% VO2max ≈ HR 140 bpm, 5-min rests; Tsalikian 2005): mean glucose fall over the
    75-min bout 20–60% (DirecNet ~40%), the insulin-sensitivity multiplier 1 + A·Z·W > 1.2 six hours
    after the bout, and glucose > 10% below its pre-exercise level six hours after.
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax.numpy as jnp
import numpy as np


def _row(*a):
    from ._validate import _row as row

    return row(*a)


def _basal_betacell(values=None):
    from .models._betacell import BetaCellParams, capacity_for_basal

    return capacity_for_basal(BetaCellParams.from_dict(values), 95.0, 1.8)


def clamp_secretion(values=None, rise_mg_per_dl: float = 125.0, t_end_min: float = 120.0):
    """``(t [min], secretion [pmol/kg/min])`` of the beta cell under a step clamp from 95 mg/dL."""
    from .models._betacell import simulate_betacell

    p = _basal_betacell(values)
    t = np.concatenate([np.arange(0.0, 30.0, 0.1), np.arange(30.0, t_end_min + 0.5, 1.0)])
    _, isr = simulate_betacell(p, lambda s: 95.0 + rise_mg_per_dl + 0.0 * s, jnp.asarray(t),
                               basal_glucose_mg_per_dl=95.0)
    return t, np.asarray(isr)


def check_biphasic_secretion(values=None) -> list[dict]:
    t, isr = clamp_secretion(values)
    name, src = "biphasic_secretion", "+125 mg/dL step clamp from 95 mg/dL (DeFronzo 1979 protocol); issue 6"
    early = t <= 30.0
    falls = np.nonzero(early[1:] & (np.diff(isr) < 0))[0]  # first local maximum = first-phase peak
    i_peak = int(falls[0]) if falls.size else int(np.nonzero(early)[0][-1])
    t_peak, peak = t[i_peak], isr[i_peak]
    after = early & (t >= t_peak)
    i_nadir = int(np.argmin(np.where(after, isr, np.inf)))
    nadir = isr[i_nadir]
    at = lambda m: float(np.interp(m, t, isr))
    rising = max(nadir - at(60.0), at(60.0) - at(120.0))
    return [
        _row(name, src, f"first-phase peak (first local maximum) {peak:.3g} pmol/kg/min at {t_peak:.1f} min: distance outside [2, 10] min",
             max(2.0 - t_peak, t_peak - 10.0, 0.0), 0.0),
        _row(name, src, f"nadir/peak − 1 (nadir {nadir:.3g} at {t[i_nadir]:.1f} min), must be < 0", nadir / peak - 1.0, -1e-9),
        _row(name, src, f"second phase rising: max(ISR(nadir) − ISR(60), ISR(60) − ISR(120)) [pmol/kg/min] "
                        f"(ISR 60 min {at(60.0):.3g}, 120 min {at(120.0):.3g}), must be < 0", rising, -1e-9),
    ]


def check_katp_closure_secretion(block: float = 0.5) -> list[dict]:
    from .models._betacell import (
        betacell_steady_state,
        simulate_betacell,
        steady_state_secretion,
    )

    p = _basal_betacell()
    y0 = betacell_steady_state(95.0, p)
    su = eqx.tree_at(lambda q: q.katp_block, p, jnp.asarray(block, dtype=p.katp_block.dtype))
    t = jnp.arange(0.0, 60.5, 0.5)
    _, isr = simulate_betacell(su, lambda s: 95.0 + 0.0 * s, t, y0=y0)
    base = float(steady_state_secretion(95.0, p))
    ss = float(steady_state_secretion(95.0, su))
    mean_su = float(np.trapezoid(np.asarray(isr), np.asarray(t)) / 60.0)
    name, src = "katp_closure_secretion", f"basal glucose 95 mg/dL, katp_block {block} (sulfonylurea-like); issue 6"
    return [
        _row(name, src, f"steady state: ISR(no block)/ISR(block) − 1 ({base:.3g} vs {ss:.3g} pmol/kg/min), must be < 0",
             base / ss - 1.0, -1e-9),
        _row(name, src, f"0–60 min after closing: ISR(no block)/mean ISR − 1 (mean {mean_su:.3g}), must be < 0",
             base / mean_su - 1.0, -1e-9),
    ]


def mechanistic_meal(values=None, mode: str = "reference"):
    """The BIOMD0000000379 78 g meal with the mechanistic secretion through :func:`vpop.simulate`:
    ``(result, params)``."""
    from ._engine import simulate
    from ._protocols import Meal, Protocol
    from ._sets import parameters_from_set
    from .models._betacell import DallaMan2007Mechanistic

    dm_model, dm, init = parameters_from_set("BIOMD0000000379")
    model = DallaMan2007Mechanistic(dynamic_secretion=dm_model.dynamic_secretion,
                                    renal_excretion=dm_model.renal_excretion, clip_egp=dm_model.clip_egp)
    p = model.make_params(dm, values)
    y0 = model.initial_state(p, init)
    res = simulate(model, p, Protocol(420.0, (Meal(0.0, 78.0),), 1.0, name="biomd379_meal"), y0=y0, mode=mode)
    return res, p


def check_mechanistic_secretion_meal(values=None) -> list[dict]:
    from ._engine import Status
    from ._validate import load_reference
    from .models._betacell import dallaman_secretion_map

    ref = load_reference()
    res, p = mechanistic_meal(values)
    name = "mechanistic_secretion_meal"
    mp = {k: float(v) for k, v in dallaman_secretion_map(p.betacell(), p.Gb).items()}
    src = ("BIOMD0000000379 78 g meal, Dalla Man secretion replaced by the mechanistic beta cell; mapped "
           f"Sb {mp['Sb']:.3g}, beta {mp['beta']:.3g}, K {mp['K']:.3g}, alpha {mp['alpha']:.3g} "
           f"(Dalla Man: 1.8, 0.11, 2.3, 0.05)")
    if int(res.status[0]) != Status.OK:
        return [_row(name, src, "solver_status", np.inf, 0)]
    g = np.asarray(res.glucose_mg_per_dl()[0])
    ins = np.asarray(res.insulin_pmol_per_l()[0])
    rel = np.abs(ins - ref["I"].to_numpy()) / ref["I"].to_numpy()
    return [
        _row(name, src, "max_abs_diff_glucose [mg/dL] over 0–420 min", np.max(np.abs(g - ref["G"].to_numpy())), 10.0),
        _row(name, src, f"max_rel_diff_insulin [1] over 0–420 min (at {int(np.argmax(rel))} min)", np.max(rel), 0.2),
    ]


# ---------------------------------------------------------------------------------------------- liver
#: Liver glycogen after an overnight fast, Taylor 1996 (207 mmol/L liver, glucosyl units).
OVERNIGHT_GLYCOGEN_MMOL_PER_L = 207.0


@functools.lru_cache(maxsize=4)
def _dallaman_normal_meal(meal_g: float, t_end_min: float):
    """Glucose, insulin and Ra of the Dalla Man 2007 normal subject's meal (reference engine), cached:
    ``(t, G [mg/dL], I [pmol/L], Ra [mg/kg/min], BW [kg])`` as numpy arrays."""
    from ._engine import simulate
    from ._protocols import Meal, Protocol
    from ._sets import parameters_from_set

    model, params, _ = parameters_from_set("DallaMan2007_normal")
    res = simulate(model, params, Protocol(t_end_min, (Meal(0.0, meal_g),), 1.0, name="meal"), mode="reference")
    fx = res.fluxes()
    return (np.asarray(res.time_min), np.asarray(fx.glucose[0]), np.asarray(fx.insulin[0]), np.asarray(fx.Ra[0]),
            float(params.BW))


def liver_meal(meal_g: float = 78.0, t_end_min: float = 720.0, values=None):
    """The liver driven by the Dalla Man 2007 normal subject's meal (reference engine): ``(t, glycogen
    [mg/kg], LiverFluxes, body weight [kg])``."""
    from .models._liver import (
        MG_PER_KG_PER_MMOL_PER_L_LIVER,
        LiverParams,
        simulate_liver,
    )

    t, G, I, Ra, bw = _dallaman_normal_meal(float(meal_g), float(t_end_min))
    g0 = OVERNIGHT_GLYCOGEN_MMOL_PER_L * MG_PER_KG_PER_MMOL_PER_L_LIVER
    gly, lf = simulate_liver(LiverParams.from_dict(values), g0, t, G, I, Ra)
    return t, np.asarray(gly), lf, bw


#: Carbohydrate of Taylor 1996's liquid mixed meal [g], from its abstract: net synthesis 28.3 g was
#: "approximately 19% of meal carbohydrate content" (28.3/0.19)
TAYLOR1996_MEAL_CARBS_G = 28.3 / 0.19


def _glycogen_peak(meal_g: float, values=None):
    """``(peak time [min], net synthesis [fraction of meal carbohydrate], fall over 2 h after the
    peak [mmol/L/min])`` of the liver driven by the Dalla Man 2007 normal subject's meal."""
    from .models._liver import MG_PER_KG_PER_MMOL_PER_L_LIVER as MMOL

    t, gly, _lf, bw = liver_meal(meal_g, values=values)
    i = int(np.argmax(gly))
    j = min(i + 120, len(t) - 1)
    fall = (gly[i] - gly[j]) / (t[j] - t[i]) / MMOL if j > i else 0.0
    return float(t[i]), float((gly[i] - gly[0]) * bw / (meal_g * 1000.0)), float(fall)


def check_liver_glycogen_meal(values=None, meal_g: float = 78.0) -> list[dict]:
    """Taylor 1996's glycogen peak time and net synthesis, with the model's 78 g meal (the Dalla Man
    2007 reference meal, the meal the model was built on). Reported beside it, not judged: the same
    at Taylor's own meal carbohydrate (:data:`TAYLOR1996_MEAL_CARBS_G`, a liquid meal the Dalla Man
    gut parameters were not fitted to)."""
    t_peak, frac, fall = _glycogen_peak(meal_g, values)
    t_tay, frac_tay, _ = _glycogen_peak(TAYLOR1996_MEAL_CARBS_G, values)
    name = "liver_glycogen_meal"
    src = (f"Taylor 1996 (JCI 97:126): glycogen peak 4–6 h after a mixed meal (318 min), net synthesis 15–25% "
           f"(19%) of meal carbohydrate; liver driven by Dalla Man 2007 normal, {meal_g:g} g meal. Not calibrated to "
           f"these (tools/calibrate_liver.py fits other numbers), but the fit's direct-pathway deposition target (25% of "
           f"the meal over 0–6 h: 1/3 hepatic uptake × ~75% to glycogen, Winnick 2011/2013), added in issue 6 after this "
           f"row had failed, sets most of the net synthesis: that row is not an independent validation; the peak time is "
           f"not fitted (delayed insulin activation of the direct pathway at Dalla Man's ki, a structure chosen in issue 6 "
           f"with this band in view); not reproduced: post-peak fall {fall:.3f} mmol/L/min over 2 h (Taylor 0.26). "
           f"At Taylor's own meal carbohydrate ({TAYLOR1996_MEAL_CARBS_G:.0f} g, reported, not judged): peak {t_tay:.0f} min, "
           f"net synthesis {100 * frac_tay:.1f}%")
    return [
        _row(name, src, f"glycogen peak at {t_peak:.0f} min: distance outside [240, 360] min", max(240.0 - t_peak, t_peak - 360.0, 0.0), 0.0),
        _row(name, src, f"net glycogen synthesis {100 * frac:.1f}% of meal carbohydrate: distance outside [15, 25] %-points",
             max(15.0 - 100 * frac, 100 * frac - 25.0, 0.0), 0.0),
    ]


def fasting_gng_fraction(values=None, t_end_h: float = 42.0):
    """From an overnight fast (14 h, glycogen 207 mmol/L liver) to ``t_end_h`` at the Dalla Man 2007
    normal basal glucose and insulin (held constant: the model has no fasting fall of insulin):
    ``(hours of fasting, GNG/EGP, glycogen [mg/kg])``, GNG net of the indirect pathway."""
    from ._sets import parameters_from_set
    from .models._liver import (
        MG_PER_KG_PER_MMOL_PER_L_LIVER,
        LiverParams,
        simulate_liver,
    )

    _, params, _ = parameters_from_set("DallaMan2007_normal")
    t = np.arange(0.0, (t_end_h - 14.0) * 60 + 1.0, 10.0)
    G, I = np.full_like(t, float(params.Gb)), np.full_like(t, float(params.Ib))
    gly, lf = simulate_liver(LiverParams.from_dict(values), OVERNIGHT_GLYCOGEN_MMOL_PER_L * MG_PER_KG_PER_MMOL_PER_L_LIVER, t, G, I)
    frac = np.asarray((lf.gluconeogenesis_mg_per_kg_min - lf.indirect_synthesis_mg_per_kg_min) / lf.egp_mg_per_kg_min)
    return 14.0 + t / 60.0, frac, np.asarray(gly)


def check_gluconeogenesis_fasting(values=None) -> list[dict]:
    h, frac, _ = fasting_gng_fraction(values)
    at = lambda hours: float(np.interp(hours, h, frac))
    name = "gluconeogenesis_fasting"
    src = ("Landau 1996 (JCI 98:378): GNG 47% of EGP at 14 h, 67% at 22 h (a calibration target of "
           f"tools/calibrate_liver.py, model {at(22.0):.2f}), 93% at 42 h (model {at(42.0):.2f}); Rothman 1991 (Science 254:573): "
           f"82% over 22–36 h (model mean {float(np.mean(frac[(h >= 22) & (h <= 36)])):.2f}); issue 6: 45–65% "
           "overnight, > 80% by 40 h")
    return [
        _row(name, src, f"GNG/EGP at 14 h = {at(14.0):.3f}: distance outside [0.45, 0.65]", max(0.45 - at(14.0), at(14.0) - 0.65, 0.0), 0.0),
        _row(name, src, f"GNG/EGP at 40 h = {at(40.0):.3f}: 0.80 − value, must be < 0", 0.80 - at(40.0), -1e-9),
    ]


# ----------------------------------------------------------------------------------- counter-regulation
def hypoglycaemic_clamp(target_mg_per_dl: float, insulin_pmol_per_l: float = 420.0, t_end_min: float = 180.0,
                        counterregulation_values=None, liver_values=None):
    """A hyperinsulinaemic clamp on the Dalla Man 2007 normal subject's basal state: insulin rises to
    ``insulin_pmol_per_l`` (time constant 10 min, a ~1 mU/kg/min infusion), glucose is taken linearly
    from Gb to ``target_mg_per_dl`` over 60 min and held. Glucose and insulin are imposed (that is what
    a clamp does); glucagon, epinephrine and the liver respond. Returns ``(t, G, I, counter-regulation
    states, LiverFluxes)``."""
    from ._sets import parameters_from_set
    from .models._counterregulation import (
        CounterregulationParams,
        simulate_counterregulation,
    )
    from .models._liver import OVERNIGHT_GLYCOGEN_MG_PER_KG, LiverParams, simulate_liver

    if not 20.0 <= target_mg_per_dl <= 400.0:
        raise ValueError(f"target_mg_per_dl must be within [20, 400] mg/dL, got {target_mg_per_dl!r}")
    if not 0.0 < insulin_pmol_per_l <= 10000.0:
        raise ValueError(f"insulin_pmol_per_l must be within (0, 10000] pmol/L, got {insulin_pmol_per_l!r}")
    _, dm, _ = parameters_from_set("DallaMan2007_normal")
    gb, ib = float(dm.Gb), float(dm.Ib)
    t = np.arange(0.0, t_end_min + 0.5, 1.0)
    I = ib + (insulin_pmol_per_l - ib) * (1.0 - np.exp(-t / 10.0))
    G = np.where(t < 60.0, gb + (target_mg_per_dl - gb) * t / 60.0, target_mg_per_dl)
    cr = simulate_counterregulation(CounterregulationParams.from_dict(counterregulation_values), t, G, I)
    _, lf = simulate_liver(LiverParams.from_dict(liver_values), OVERNIGHT_GLYCOGEN_MG_PER_KG, t, G, I, None,
                           cr.glucagon_action_pg_per_ml, cr.epinephrine_action_pg_per_ml)
    return t, G, I, cr, lf


def check_hypoglycaemia_counterregulation(counterregulation_values=None, liver_values=None) -> list[dict]:
    t, _, _, hy, lh = hypoglycaemic_clamp(50.0, counterregulation_values=counterregulation_values, liver_values=liver_values)
    _, _, _, eu, le = hypoglycaemic_clamp(_basal_glucose(), counterregulation_values=counterregulation_values,
                                          liver_values=liver_values)
    w = t >= 120.0
    mean = lambda a: float(np.mean(np.asarray(a)[w]))
    h_ratio = mean(hy.glucagon_pg_per_ml) / float(hy.glucagon_pg_per_ml[0])
    e_ratio = mean(hy.epinephrine_pg_per_ml) / float(hy.epinephrine_pg_per_ml[0])
    egp_b = float(lh.egp_mg_per_kg_min[0])
    egp_h, egp_e = mean(lh.egp_mg_per_kg_min), mean(le.egp_mg_per_kg_min)
    name = "hypoglycaemia_counterregulation"
    src = ("hyperinsulinaemic (420 pmol/L) clamps at 50 mg/dL vs euglycaemia, means over 120–180 min, Dalla Man "
           "2007 normal basal state; glucagon and epinephrine thresholds 68/69 mg/dL (Mitrakou 1991, AJP 260:E67); "
           "glucagon rises several-fold (2–5×) and epinephrine ~10-fold in insulin-induced hypoglycaemia (Cryer, "
           "Diabetes 2008;57:3169 review [R]; the glucagon gain is calibrated to ~3× (not a validation; Cryer-lab clamps "
           "at 55 mg/dL report ×1.3–1.5, Banarer 2002, Raju 2005), the epinephrine gain to Kerr 1989 (+1.76 nmol/L at "
           "2.8 mmol/L; the epinephrine row is a validation, given the assumed basal 30 pg/mL)); "
           "counter-regulation restores EGP despite hyperinsulinaemia, while a euglycaemic clamp suppresses it "
           f"(Lecavalier 1989, AJP 256:E844 [R]). Basal EGP {egp_b:.2f}, hypo {egp_h:.2f}, eu {egp_e:.2f} mg/kg/min; "
           f"glucagon {float(hy.glucagon_pg_per_ml[0]):.0f} → {mean(hy.glucagon_pg_per_ml):.0f} pg/mL (eu "
           f"{mean(eu.glucagon_pg_per_ml):.0f})")
    return [
        _row(name, src, f"glucagon hypo/basal = {h_ratio:.2f}: distance outside [2, 5]", max(2.0 - h_ratio, h_ratio - 5.0, 0.0), 0.0),
        _row(name, src, f"epinephrine hypo/basal = {e_ratio:.1f}: 5 − value, must be < 0", 5.0 - e_ratio, -1e-9),
        _row(name, src, f"EGP hypo/eu clamp = {egp_h / egp_e:.2f}: 1.5 − value, must be < 0", 1.5 - egp_h / egp_e, -1e-9),
        _row(name, src, f"EGP hypo/basal = {egp_h / egp_b:.2f}: 0.5 − value, must be < 0", 0.5 - egp_h / egp_b, -1e-9),
    ]


def _basal_glucose() -> float:
    from ._sets import parameters_from_set

    return float(parameters_from_set("DallaMan2007_normal")[1].Gb)


# ----------------------------------------------------------------------------------------- exercise
#: UVA/Padova 2008 adults of the exercise check.
EXERCISE_CHECK_PATIENTS = ("adult#001", "adult#002", "adult#003", "adult#004", "adult#005")


def exercise_t1d(names=EXERCISE_CHECK_PATIENTS, exercise_values=None, mode: str = "reference", duration_min: float = 600.0):
    """The DirecNet exercise protocol (Tsalikian et al., J Pediatr 2005;147:528: 4 × 15 min treadmill at
    HR ≈ 140 bpm with 5-min rests) from 60 min, unannounced, basal insulin continued, no meals, on UVA/Padova
    adults from their basal state; 67% VO2max puts HR at 140 bpm with the default HRb 60 and HRmax 180.
    Returns the :class:`vpop.T1DResult` (Y, Z, W saved)."""
    from ._t1d import CGM, ExerciseEvent, T1DScenario, simulate_t1d, uva_padova_cohort

    events = tuple(ExerciseEvent(60.0 + 20.0 * k, 15.0, 67.0, announced=False) for k in range(4))
    scenario = T1DScenario(duration_min, (), 5.0, name="direcnet_exercise", exercise=events)
    return simulate_t1d(uva_padova_cohort(list(names)), scenario, cgm=CGM.named("Dexcom", noise=False), mode=mode,
                        exercise_values=exercise_values,
                        saved_states=("glucose_plasma", "exercise_si_signal", "exercise_hr_integral"))


def check_exercise_t1d(names=EXERCISE_CHECK_PATIENTS, exercise_values=None) -> list[dict]:
    from .models._uvapadova2008_exercise import EXERCISE_DEFAULTS

    res = exercise_t1d(names, exercise_values)
    g = np.asarray(res.blood_glucose_mg_per_dl())
    t = np.asarray(res.time_min)
    at = lambda m: g[:, int(np.argmin(np.abs(t - m)))]
    fall_end = 100.0 * float(np.mean(1.0 - at(135.0) / at(60.0)))
    late = 100.0 * float(np.mean(1.0 - at(135.0 + 360.0) / at(60.0)))
    A = {**EXERCISE_DEFAULTS, **(exercise_values or {})}["ex_A"]
    mult = lambda m: float(np.mean(1.0 + A * (np.asarray(res.states["exercise_si_signal"])
                                              * np.asarray(res.states["exercise_hr_integral"]))[:, int(np.argmin(np.abs(t - m)))]))
    m6 = mult(135.0 + 360.0)
    name = "exercise_t1d"
    src = (f"UVA/Padova 2008 + Dalla Man, Breton & Cobelli 2009 exercise (JDST 3:56; A, β, γ, Tex = 600 min), "
           f"{len(names)} adults, DirecNet protocol (Tsalikian 2005, J Pediatr 147:528: plasma glucose fell ~40% "
           f"[R] during 75 min of moderate exercise); insulin sensitivity raised for hours after exercise (Dalla Man "
           f"2009 Tex = 600 min; Riddell 2017 consensus, Lancet Diabetes Endocrinol 5:377: up to 24–48 h [R]). "
           f"Glucose fall 6 h after the bout {late:.0f}% of pre-exercise")
    return [
        _row(name, src, f"mean glucose fall over the 75-min bout {fall_end:.1f}%: distance outside [20, 60] %-points",
             max(20.0 - fall_end, fall_end - 60.0, 0.0), 0.0),
        _row(name, src, f"insulin-sensitivity multiplier 1 + A·Z·W 6 h after the bout {m6:.2f}: 1.2 − value, must be < 0",
             1.2 - m6, -1e-9),
        _row(name, src, f"glucose 6 h after the bout {late:.1f}% below pre-exercise: 10 − value, must be < 0", 10.0 - late, -1e-9),
    ]
