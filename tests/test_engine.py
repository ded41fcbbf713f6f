"""Engine conformance: jit / vmap / grad, no recompilation, fast mode vs reference, per-person
failure isolation, and bad input.

Shapes are reused across tests (and with test_observables.py) so each compiled entry point is
traced once: the 75-g OGTT on a 10-min grid for one person (glucose saved) and for a 4-person cohort
(all states, max_steps=256), and a day of mixed meals on a 5-min grid for 4 people.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import vpop
from vpop import _engine
from vpop._engine import Status

OGTT10 = vpop.ogtt(75.0, save_every_min=10.0)  # 18 intervals: cheap to compile and to differentiate


def _ogtt_auc(model, raw_params, mode):
    """Glucose AUC [mg/dL·min] of a 75-g OGTT, basal re-derived from the rate constants."""
    p = jax.jit(model.derive_basal)(raw_params)
    r = vpop.simulate(model, p, OGTT10, mode=mode, saved_states=("glucose_plasma",))
    return vpop.auc(r.states["glucose_plasma"][0] / p.VG, r.time_min)


def _with(p, name, value):
    return eqx.tree_at(lambda q: getattr(q, name), p, jnp.asarray(value, jnp.result_type(getattr(p, name))))


# --------------------------------------------------------------------------- jit / vmap / grad


def _nontrivial_state(model, params, n):
    """Basal state of each person, moved off basal (meal in the stomach, raised glucose/insulin)."""
    y = model.basal_state(params)
    scale = 1.0 + 0.1 * jnp.arange(n)
    return y._replace(
        glucose_plasma=y.glucose_plasma * 1.4 * scale,
        insulin_plasma=y.insulin_plasma * 3.0,
        stomach_solid=30_000.0 * scale,
        stomach_liquid=20_000.0 * scale,
        gut=5_000.0 * scale,
        insulin_action=10.0 * scale,
        secretion_static=0.5 * scale,
        meal_dose=60_000.0 * scale,
    )


def test_vector_field_jit_vmap_and_broadcast_agree():
    model, P, _ = vpop.sample_population("DallaMan2007_normal", 4, cv={"Vmx": 0.3, "kp3": 0.3, "kabs": 0.3}, seed=2)
    y = _nontrivial_state(model, P, 4)
    batched = model.vector_field(0.0, y, P)  # the batched-state call (fast mode's way)
    vmapped = jax.vmap(model.vector_field, in_axes=(None, 0, 0))(0.0, y, P)  # per person (reference mode's way)
    jitted = jax.jit(model.vector_field)(0.0, y, P)
    one = model.vector_field(0.0, jax.tree_util.tree_map(lambda a: a[3], y), jax.tree_util.tree_map(lambda a: a[3], P))
    for k, a, b, c, d in zip(model.State._fields, batched, vmapped, jitted, one):
        assert a.shape == (4,), k
        assert bool(jnp.all(jnp.isfinite(a))), k
        # Elementwise float64 physics; only operation fusion/FMA contraction may differ between
        # eager, vmapped and jitted code: a few ulp, so 1e-12 relative (+1e-12 absolute for zeros).
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12, err_msg=k)
        np.testing.assert_allclose(c, a, rtol=1e-12, atol=1e-12, err_msg=k)
        np.testing.assert_allclose(d, a[3], rtol=1e-12, atol=1e-12, err_msg=k)
    # The state is really off basal: glucose and gut derivatives are not zero.
    assert bool(jnp.all(jnp.abs(batched.glucose_plasma) > 1e-3)) and bool(jnp.all(batched.gut != 0))


def test_vector_field_jacobian_is_finite():
    model, p, _ = vpop.parameters_from_set("DallaMan2007_normal")
    y = model.basal_state(p)
    # Off basal and with no meal eaten yet (D = 0 exercises the safe-division branch of k_empt).
    y = y._replace(glucose_plasma=y.glucose_plasma * 1.3)
    yv, unravel = ravel_pytree(y)
    jac_y = jax.jit(jax.jacfwd(lambda v: ravel_pytree(model.vector_field(0.0, unravel(v), p))[0]))(yv)
    grad_p = jax.jit(jax.grad(lambda q: model.vector_field(0.0, y, q).glucose_plasma))(p)
    assert jac_y.shape == (13, 13)
    assert bool(jnp.all(jnp.isfinite(jac_y)))
    assert all(bool(jnp.isfinite(v)) for v in grad_p.to_dict().values())
    # d(dGp/dt)/dGp = −kp2 − k1 at this state (EGP unclipped, Gp < ke2 so no renal term), and
    # d(dGp/dt)/dkp1 = 1: exact to rounding.
    i = model.State._fields.index("glucose_plasma")
    assert float(jac_y[i, i]) == pytest.approx(-float(p.kp2 + p.k1), rel=1e-12)
    assert float(grad_p.kp1) == pytest.approx(1.0, rel=1e-12)


def test_grad_of_ogtt_auc_through_derive_basal_fast_mode():
    model, p, _ = vpop.parameters_from_set("DallaMan2007_normal")
    g = jax.grad(_ogtt_auc, argnums=1)(model, p, "fast")
    leaves = {k: float(v) for k, v in g.to_dict().items()}
    bad = {k: v for k, v in leaves.items() if not np.isfinite(v)}
    assert not bad, f"non-finite gradients: {bad}"
    # Signs of physiology: more insulin sensitivity, more EGP suppression, more secretion → lower
    # glucose AUC; higher kp1 → higher EGP (and higher derived Gb) → higher AUC.
    assert leaves["Vmx"] < 0 and leaves["kp3"] < 0 and leaves["beta"] < 0, leaves
    assert leaves["kp1"] > 0 and leaves["m5"] != 0.0, leaves
    # Gb, Ib, Sb are overwritten by derive_basal: exactly zero gradient.
    assert leaves["Gb"] == 0.0 and leaves["Ib"] == 0.0 and leaves["Sb"] == 0.0, leaves
    # Against central finite differences of the reference mode (float64, rtol 1e-10), step 1e-4
    # relative: FD truncation ~1e-8 relative, solver noise ~1e-6 relative. The fast mode's 1-min
    # Tsit5 + float32 costs ~2e-4 relative on these sensitivities (measured); 2e-3 allows 10×.
    for name in ("Vmx", "kp3", "m5"):  # m5 acts only through derive_basal (Sb)
        v = float(getattr(p, name))
        h = 1e-4 * v
        up = float(_ogtt_auc(model, _with(p, name, v + h), "reference"))
        dn = float(_ogtt_auc(model, _with(p, name, v - h), "reference"))
        fd = (up - dn) / (2 * h)
        assert leaves[name] == pytest.approx(fd, rel=2e-3), f"d AUC/d {name}: grad {leaves[name]:.6g} vs FD {fd:.6g}"


def test_grad_of_derived_basal_glucose_matches_finite_differences():
    model, p, _ = vpop.parameters_from_set("DallaMan2007_normal")
    derive = jax.jit(model.derive_basal)
    g = jax.grad(lambda q: derive(q).Gb)(p)  # implicit-function gradient through the Newton solve
    for name in ("kp1", "kp3", "Vm0", "m5"):
        v = float(getattr(p, name))
        h = 1e-5 * v
        fd = (float(derive(_with(p, name, v + h)).Gb) - float(derive(_with(p, name, v - h)).Gb)) / (2 * h)
        # Newton converged to 1e-12: FD error ~1e-12/1e-5 + O(h²) ≈ 1e-7 relative; 1e-5 allows 100×.
        assert float(getattr(g, name)) == pytest.approx(fd, rel=1e-5), name
        assert float(getattr(g, name)) != 0.0
    assert float(g.Gb) == 0.0  # overwritten


# --------------------------------------------------------------------------- no recompilation


@pytest.mark.parametrize("mode", vpop.MODES)
def test_no_retrace_on_second_call(mode):
    # OGTT10 for one person, glucose only: the shape the gradient and single-person tests use too.
    model, p, _ = vpop.parameters_from_set("DallaMan2007_normal")
    keep = ("glucose_plasma",)
    r1 = vpop.simulate(model, p, OGTT10, mode=mode, saved_states=keep)
    n1 = _engine.TRACE_COUNTS[mode]
    assert n1 >= 1  # the counter is hooked to tracing
    # Same shapes, other values: other parameters, another glucose load, a new model object.
    model2 = vpop.build_model("DallaMan2007")
    p2 = _with(_with(p, "Vmx", 0.06), "kabs", 0.03)
    r2 = vpop.simulate(model2, p2, vpop.ogtt(50.0, save_every_min=10.0), mode=mode, saved_states=keep)
    r3 = vpop.simulate(model, p, OGTT10, mode=mode, saved_states=keep)
    assert _engine.TRACE_COUNTS[mode] == n1, f"{mode}: retraced on a second call with the same shapes"
    assert np.all(np.asarray(r2.ok))
    # The values did change (the compiled program really took the new inputs) ...
    assert float(jnp.max(r2.states["glucose_plasma"])) < float(jnp.max(r1.states["glucose_plasma"])) - 1.0
    # ... and a rerun of the same inputs is deterministic.
    assert np.array_equal(np.asarray(r3.states["glucose_plasma"]), np.asarray(r1.states["glucose_plasma"]))


# --------------------------------------------------------------------------- fast vs reference


def test_fast_mode_matches_reference_over_a_day():
    cv = {"Vmx": 0.3, "kp3": 0.3, "beta": 0.3, "kabs": 0.3, "kmax": 0.2, "k1": 0.2, "Vm0": 0.2, "K": 0.3}
    model, P, _ = vpop.sample_population("DallaMan2007_normal", 4, cv=cv, seed=7)
    # 5-min output grid (fast mode: 5 substeps of 1 min, its default step); compared at every node.
    prot = vpop.mixed_meals(1, save_every_min=5.0)
    keep = ("glucose_plasma", "insulin_plasma")
    ref = vpop.simulate(model, P, prot, mode="reference", saved_states=keep)
    fast = vpop.simulate(model, P, prot, mode="fast", saved_states=keep)
    assert np.all(np.asarray(ref.ok)) and np.all(np.asarray(fast.ok))
    assert fast.states["glucose_plasma"].dtype == jnp.float32 and ref.states["glucose_plasma"].dtype == jnp.float64
    g_ref = np.asarray(ref.glucose_mg_per_dl())
    g_fast = np.asarray(fast.glucose_mg_per_dl(), np.float64)
    assert g_ref.max() > 150.0  # meals were eaten: a real excursion is compared, not a flat line
    err_g = np.max(np.abs(g_fast - g_ref))
    i_ref = np.asarray(ref.insulin_pmol_per_l())
    i_fast = np.asarray(fast.insulin_pmol_per_l(), np.float64)
    err_i = np.max(np.abs(i_fast / i_ref - 1.0))
    # Requirement: ≤ 1 mg/dL glucose and ≤ 1 % insulin at every saved node (measured: 2e-4
    # mg/dL and 3e-4 relative with 1-min Tsit5 steps in float32).
    assert err_g < 1.0, f"max |G_fast − G_ref| = {err_g:.3g} mg/dL"
    assert err_i < 0.01, f"max |I_fast/I_ref − 1| = {err_i:.3g}"


# --------------------------------------------------------------------------- failure isolation

# max_steps per 10-min output interval for the reference runs below: a healthy person needs ~10;
# a small cap keeps a NaN person (whose adaptive solve can only end at max_steps) cheap. All runs of
# this section share it, so they share one compiled solve per population size.
MAX_STEPS = 256


@pytest.fixture(scope="module")
def cohort4():
    model, P, _ = vpop.sample_population("DallaMan2007_normal", 4, cv={"Vmx": 0.3, "kp3": 0.3}, seed=7)
    return model, P


@pytest.fixture(scope="module")
def clean_runs(cohort4):
    """The good cohort (4 people), and each person alone (glucose only: the one-person OGTT10 shape
    of the gradient and no-retrace tests, so no extra compilation), both modes."""
    model, P = cohort4
    out = {}
    for mode in vpop.MODES:
        out[(mode, "cohort")] = vpop.simulate(model, P, OGTT10, mode=mode, max_steps=MAX_STEPS)
        for i in range(4):
            one = jax.tree_util.tree_map(lambda a: a[i], P)
            out[(mode, i)] = vpop.simulate(model, one, OGTT10, mode=mode, saved_states=("glucose_plasma",))
    return out


# Values injected directly into the pytree (bypassing validation): a NaN rate, an absurd absorption
# rate (1e6/min: explosively stiff for the fixed-step scheme, max_steps for the adaptive one), and a
# negative glucose volume (negative glucose).
BAD = [("Vmx", float("nan")), ("kabs", 1e6), ("VG", -1.0)]


@pytest.mark.parametrize("mode", vpop.MODES)
@pytest.mark.parametrize("field,value", BAD, ids=[b[0] for b in BAD])
def test_failure_is_isolated_to_the_bad_person(cohort4, clean_runs, mode, field, value):
    model, P = cohort4
    bad = eqx.tree_at(lambda q: getattr(q, field), P, getattr(P, field).at[1].set(value))
    r = vpop.simulate(model, bad, OGTT10, mode=mode, max_steps=MAX_STEPS)
    status = np.asarray(r.status)
    assert status.shape == (4,)
    assert status[1] != Status.OK, f"{field}={value}: bad person reported {Status(int(status[1])).name}"
    assert list(np.asarray(r.ok)) == [True, False, True, True], [Status(int(s)).name for s in status]
    good = clean_runs[(mode, "cohort")]
    assert np.all(np.asarray(good.ok))
    others = np.array([0, 2, 3])
    for k in r.states:
        # 1) Same compiled program, the bad person replaced by a good one: the others are
        #    bit-identical (no cross-person reduction exists in either engine).
        a = np.asarray(r.states[k])[others]
        b = np.asarray(good.states[k])[others]
        assert np.array_equal(a, b), f"{mode}/{field}: state {k} of the other people changed (max diff {np.nanmax(np.abs(a - b)):g})"
    # 2) Against each other person simulated alone (no bad person in the run at all). XLA on CPU
    #    compiles each batch size separately, and its code for different sizes can differ by an
    #    ulp here and there (measured for person 0: n = 4 vs n = 1 differ by ~3e-11 relative in
    #    reference mode, where the adaptive controller may amplify an ulp up to its tolerance;
    #    in float32 fast mode n = 2 differs from n = 1, 3, 4 by ~1e-7 relative). Hence 1e-8
    #    relative in reference mode (solver rtol 1e-10, with margin) and 1e-5 in fast mode
    #    (~100 float32 ulp); a real leak from the bad person would be NaN or O(1).
    rtol = 1e-8 if mode == "reference" else 1e-5
    for i in others:
        alone = np.asarray(clean_runs[(mode, i)].states["glucose_plasma"][0])
        mine = np.asarray(r.states["glucose_plasma"][i])
        err = np.max(np.abs(mine - alone)) / np.max(np.abs(alone))
        assert err <= rtol, f"{mode}/{field}: person {i} differs from their solo run by {err:g} (relative)"
    df = vpop.summarize(r)
    numeric = [c for c in df.columns if c not in ("person", "status")]
    assert df.loc[1, "status"] == Status(int(status[1])).name
    assert df.loc[1, numeric].isna().all(), "failed person must have NaN observables"
    assert np.isfinite(df.loc[others, numeric].to_numpy(np.float64)).all()
    assert (df.loc[others, "status"] == "OK").all()


def test_failure_codes(cohort4):
    model, P = cohort4
    P = eqx.tree_at(lambda q: q.VG, P, P.VG.at[1].set(-1.0))  # negative volume → negative glucose
    P = eqx.tree_at(lambda q: q.Vmx, P, P.Vmx.at[2].set(jnp.nan))
    r = vpop.simulate(model, P, OGTT10, mode="fast", max_steps=MAX_STEPS)
    assert list(np.asarray(r.status)) == [Status.OK, Status.NEGATIVE_GLUCOSE, Status.NON_FINITE, Status.OK]
    r = vpop.simulate(model, P, OGTT10, mode="reference", max_steps=MAX_STEPS)
    # A NaN state makes the adaptive controller fail: reported as a solver failure.
    assert list(np.asarray(r.status)) == [Status.OK, Status.NEGATIVE_GLUCOSE, Status.SOLVER_FAILED, Status.OK]


# --------------------------------------------------------------------------- shapes and bad input


def test_single_person_and_saved_subset():
    model, p, _ = vpop.parameters_from_set("DallaMan2007_normal")
    r = vpop.simulate(model, p, OGTT10, mode="fast", saved_states=("glucose_plasma",))
    assert r.n_people == 1 and r.states["glucose_plasma"].shape == (1, OGTT10.n_intervals + 1)
    assert set(r.states) == {"glucose_plasma"}
    np.testing.assert_array_equal(r.time_min, np.arange(0.0, 181.0, 10.0))
    with pytest.raises(ValueError, match="not saved"):
        r.fluxes()


def test_bad_input_to_simulate():
    model, p, _ = vpop.parameters_from_set("DallaMan2007_normal")
    with pytest.raises(ValueError, match="mode"):
        vpop.simulate(model, p, OGTT10, mode="rk4")
    with pytest.raises(ValueError, match="glucose'"):
        vpop.simulate(model, p, OGTT10, saved_states=("glucose",))
    with pytest.raises(TypeError, match="Protocol"):
        vpop.simulate(model, p, [(0.0, 75.0)])
    mixed = eqx.tree_at(lambda q: q.Vmx, p, jnp.full((3,), 0.047))  # scalar and 1-D leaves mixed
    with pytest.raises(ValueError, match="scalars or all be 1-D"):
        vpop.simulate(model, mixed, OGTT10)
    P = jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a, (3,)), p)
    P = eqx.tree_at(lambda q: q.Vmx, P, jnp.full((2,), 0.047))
    with pytest.raises(ValueError, match="person counts"):
        vpop.simulate(model, P, OGTT10)


def test_simulate_is_jittable_end_to_end():
    model, p, _ = vpop.parameters_from_set("DallaMan2007_normal")

    def final_glucose(q):
        r = vpop.simulate(model, q, OGTT10, mode="fast", saved_states=("glucose_plasma",))
        return r.states["glucose_plasma"][:, -1] / q.VG, r.status

    g_jit, status = jax.jit(final_glucose)(p)
    g_eager, _ = final_glucose(p)
    assert int(status[0]) == Status.OK
    # Same float32 program up to XLA fusion choices: a few ulp (1e-6 relative).
    np.testing.assert_allclose(np.asarray(g_jit), np.asarray(g_eager), rtol=1e-6)


@pytest.mark.parametrize("which", ["DallaMan2007", "DallaMan2007Exercise", "DallaMan2007Liver", "DallaMan2007Mechanistic"])
def test_written_out_bosh3_matches_diffrax_bosh3(which):
    """The default fast scheme ``"bosh3_written"`` (Bogacki–Shampine 3 written out on the state
    pytree, ``vpop._engine._bosh3_written_out``) against ``"bosh3"``, stepping diffrax's ``Bosh3``:
    the same tableau, so every state agrees to float32 rounding (measured: at most 2.7e-6 of a state's
    range and 4.6e-5 mg/dL of glucose over 1 440 steps; asserted: 2e-5 and 2.5e-4), with meals, 5-min outputs in
    1-min substeps (the mechanistic beta cell needs steps of ≤ 1 min) and, for the exercise model, a
    bout."""
    from vpop import models

    model, p, init = vpop.sample_population("DallaMan2007_normal", 16, cv={"Vmx": 0.3, "beta": 0.3}, seed=4)
    bouts = ()
    if which == "DallaMan2007Exercise":
        model, p = models.DallaMan2007Exercise(), models.dallaman_exercise_params(p)
        bouts = (vpop.ExerciseBout(600.0, 60.0, 60.0),)
    elif which == "DallaMan2007Liver":
        model, p = models.DallaMan2007Liver(), models.DallaMan2007Liver.make_params(p)
    elif which == "DallaMan2007Mechanistic":
        model, p = models.DallaMan2007Mechanistic(), models.DallaMan2007Mechanistic.make_params(p)
    day = vpop.mixed_meals(1, save_every_min=5.0)
    prot = vpop.Protocol(day.duration_min, day.meals, 5.0, exercise=bouts)
    a, b = (vpop.simulate(model, p, prot, mode="fast", fast_solver=fs, substeps=5) for fs in ("bosh3_written", "bosh3"))
    assert np.all(np.asarray(a.status) == 0) and np.all(np.asarray(b.status) == 0)
    assert np.max(np.abs(np.asarray(a.glucose_mg_per_dl()) - np.asarray(b.glucose_mg_per_dl()))) < 2.5e-4
    for name in model.State._fields:
        x, y = np.asarray(a.states[name], float), np.asarray(b.states[name], float)
        scale = max(float(np.ptp(y)), float(np.abs(y).max()) * 1e-3, 1e-6)
        assert np.max(np.abs(x - y)) <= 2e-5 * scale, name


def test_default_fast_scheme():
    """Without ``fast_solver``, fast mode steps ``"bosh3_written"`` (bit for bit the same as asking for
    it, and not the diffrax path), except for a model that steps ``"bosh3"`` itself (UVA/Padova)."""
    from vpop import models
    from vpop._engine import default_fast_solver

    model, p, _ = vpop.sample_population("DallaMan2007_normal", 9, cv={"Vmx": 0.3}, seed=2)
    prot = vpop.mixed_meals(1, save_every_min=5.0)
    runs = {fs: np.asarray(vpop.simulate(model, p, prot, mode="fast", fast_solver=fs).states["glucose_plasma"])
            for fs in (None, "bosh3_written", "bosh3")}
    assert np.array_equal(runs[None], runs["bosh3_written"])
    assert not np.array_equal(runs[None], runs["bosh3"])  # the two paths round differently
    assert default_fast_solver(model, p, 5.0, 5) == "bosh3_written"
    t1d = vpop.uva_padova_cohort()
    assert default_fast_solver(models.UvaPadova2008(), t1d.params, 5.0, 3) == "bosh3"
    assert default_fast_solver(models.UvaPadova2008(fast_direct=False), t1d.params, 5.0, 3) == "bosh3_written"
