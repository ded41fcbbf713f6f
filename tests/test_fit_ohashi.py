"""Oral minimal model + C-peptide model, the Ohashi 2018 data, and the ohashi_clamp_gir_prediction /
parameter_recovery checks (on subsets here; the full checks run with ``vpop validate --check NAME``)."""

import diffrax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import vpop
from vpop import _ohashi as om
from vpop._validate import check_ohashi_clamp_gir_prediction, check_parameter_recovery


@pytest.fixture(scope="module")
def ohashi():
    return om.load_ohashi()


def test_data_and_matsuda_reproduce_the_issue(ohashi):
    assert len(ohashi) == 121
    assert ohashi["group"].value_counts().to_dict() == {"T2DM": 53, "NGT": 50, "IGT": 18}
    assert ohashi["gir [mg/kg/min]"].dtype == float and ohashi["gir [mg/kg/min]"].notna().sum() == 121
    g = ohashi[[f"glucose_{t} [mg/dL]" for t in (0, 30, 60, 90, 120)]].to_numpy()
    i = ohashi[[f"insulin_{t} [µU/mL]" for t in (0, 30, 60, 90, 120)]].to_numpy()
    m = om.matsuda_index(g, i)
    ok = np.isfinite(m) & ohashi["gir [mg/kg/min]"].notna().to_numpy()
    assert ok.sum() == 118
    # the issue: Spearman r with GIR 0.38 overall; 0.22 NGT, 0.67 IGT, 0.29 T2DM
    gir = ohashi["gir [mg/kg/min]"].to_numpy()
    assert om.spearman(m[ok], gir[ok]) == pytest.approx(0.38, abs=0.005)
    for grp, r in (("NGT", 0.22), ("IGT", 0.67), ("T2DM", 0.29)):
        k = ok & (ohashi["group"] == grp).to_numpy()
        assert om.spearman(m[k], gir[k]) == pytest.approx(r, abs=0.005)


def test_ra_prior_and_absorbed_fraction_come_from_the_dalla_man_gut_model():
    from vpop._sets import parameters_from_set

    model, params, _ = parameters_from_set("DallaMan2007_normal")
    res = vpop.simulate(model, params, vpop.ogtt(75), mode="reference")
    t, ra = res.time_min, np.asarray(res.fluxes().Ra)[0]
    bw = float(np.asarray(params.BW).ravel()[0])
    k = t <= 120
    assert np.trapezoid(ra[k], t[k]) * bw / 75_000 == pytest.approx(om.FRACTION_ABSORBED_120, abs=1e-4)
    at = lambda s: ra[int(np.argmin(np.abs(t - s)))]
    for name, v in om.RA_SHAPE_PRIOR.items():
        assert at(float(name[2:])) / at(30.0) == pytest.approx(v, abs=1e-4)


def test_omm_integrator_and_ra_area():
    theta = {"SI": 4e-4, "SG": 0.02, "p2": 0.02, "ra15": 1.2, "ra60": 0.7, "ra90": 0.5, "ra120": 0.4}
    th = {k: jnp.asarray(v) for k, v in theta.items()}
    ins = jnp.array([6.0, 60.0, 70.0, 50.0, 35.0])
    dose = 75_000.0 / 65.0
    tt = np.linspace(0, 120, 2401)
    area = np.trapezoid(np.asarray(om.ra_mg_per_kg_min(th, tt, dose)), tt)
    assert area == pytest.approx(om.FRACTION_ABSORBED_120 * dose, rel=1e-6)
    g = np.asarray(om.simulate_omm(th, ins, jnp.asarray(90.0), dose))
    # reference: adaptive Tsit5 at tight tolerance, jumps at the breakpoints
    ti = jnp.asarray(om.OGTT_TIMES_MIN)

    def vf(t, y, _):
        G, X = y
        return jnp.stack([-(th["SG"] + X) * G + th["SG"] * 90.0 + om.ra_mg_per_kg_min(th, t, dose) / om.V_DL_PER_KG,
                          -th["p2"] * X + th["p2"] * th["SI"] * (jnp.interp(t, ti, ins) - ins[0])])

    sol = diffrax.diffeqsolve(diffrax.ODETerm(vf), diffrax.Tsit5(), 0.0, 120.0, 0.5, jnp.array([90.0, 0.0]),
                              saveat=diffrax.SaveAt(ts=jnp.arange(121.0)),
                              stepsize_controller=diffrax.PIDController(rtol=1e-10, atol=1e-10, jump_ts=jnp.array([15.0, 30, 60, 90])))
    assert np.max(np.abs(g - np.asarray(sol.ys[:, 0]))) < 0.01  # mg/dL
    assert g.max() > 150  # the load raises glucose


def test_units_and_van_cauter_kinetics():
    # 1 ng/mL C-peptide (3020.3 g/mol) = 0.331 nmol/L; 1 mmol/L glucose = 18.02 mg/dL
    assert om.C_PEPTIDE_PMOL_L_PER_NG_ML == pytest.approx(331.1, abs=0.1)
    assert om.GLUCOSE_MG_DL_PER_MMOL_L == pytest.approx(18.016, abs=0.001)
    # a bolus into compartment 1 decays as F e^(-a t) + (1 - F) e^(-b t) with Van Cauter's half-lives
    from scipy.linalg import expm

    for age, bmi, t2, t_short, frac in ((40, 24, False, 4.95, 0.76), (60, 33, False, 4.55, 0.78), (55, 26, True, 4.52, 0.78)):
        k = {n: float(v[0]) for n, v in om.van_cauter_kinetics([age], [bmi], [t2]).items()}
        A = np.array([[-(k["k01"] + k["k21"]), k["k12"]], [k["k21"], -k["k12"]]])
        a, b = np.log(2) / t_short, np.log(2) / (0.14 * age + 29.2)
        for t in (2.0, 10.0, 60.0):
            assert expm(A * t)[0, 0] == pytest.approx(frac * np.exp(-a * t) + (1 - frac) * np.exp(-b * t), rel=1e-10)
    v = om.van_cauter_kinetics([50, 50], [25, 25], [False, False], male=[1, 0], weight_kg=[70, 70], height_cm=[175, 175])["V_L"]
    bsa = 0.007184 * 70 ** 0.425 * 175 ** 0.725
    np.testing.assert_allclose(v, [1.92 * bsa + 0.64, 1.11 * bsa + 2.04])
    with pytest.raises(ValueError, match="age"):
        om.van_cauter_kinetics([150], [25], [False])


def test_joint_glucose_c_peptide_model_against_diffrax():
    theta = {"SI": 4e-4, "SG": 0.02, "p2": 0.02, "ra15": 1.2, "ra60": 0.7, "ra90": 0.5, "ra120": 0.4,
             "phi_s": 40.0, "phi_d": 600.0, "T_static": 12.0}
    th = {k: jnp.asarray(v) for k, v in theta.items()}
    ins = jnp.array([6.0, 60.0, 70.0, 50.0, 35.0])
    dose, gb, cpb = 75_000.0 / 65.0, 90.0, 1.8
    k = {n: float(v[0]) for n, v in om.van_cauter_kinetics([45], [27], [False]).items()}
    g, cp = (np.asarray(x) for x in om.simulate_ogtt(th, ins, jnp.asarray(gb), dose, jnp.asarray(cpb), k["k01"], k["k12"], k["k21"]))
    # the glucose part is the oral minimal model itself
    np.testing.assert_allclose(g, np.asarray(om.simulate_omm(th, ins, jnp.asarray(gb), dose)), rtol=1e-12)
    ti, cf = jnp.asarray(om.OGTT_TIMES_MIN), om.C_PEPTIDE_PMOL_L_PER_NG_ML
    ramp = om.smooth_ramp
    x = jnp.array([-1.0, 0.0, 0.02, 0.05, 3.0])
    np.testing.assert_allclose(np.asarray(ramp(x, 0.05)), [0.0, 0.0, 0.004, 0.025, 2.975], rtol=1e-12)
    srb = k["k01"] * cpb * cf

    def vf(t, y, _):  # the equations of the module doc, written out again
        G, X, c1, c2, Y = y
        dG = -(th["SG"] + X) * G + th["SG"] * gb + om.ra_mg_per_kg_min(th, t, dose) / om.V_DL_PER_KG
        return jnp.stack([dG, -th["p2"] * X + th["p2"] * th["SI"] * (jnp.interp(t, ti, ins) - ins[0]),
                          -(k["k01"] + k["k21"]) * c1 + k["k12"] * c2 + Y + th["phi_d"] * ramp(dG, 0.05) / 18.0156,
                          k["k21"] * c1 - k["k12"] * c2,
                          -(Y - (th["phi_s"] * (G - gb) / 18.0156 + ramp(-srb - th["phi_s"] * (G - gb) / 18.0156, 1.0))) / th["T_static"]])

    sol = diffrax.diffeqsolve(diffrax.ODETerm(vf), diffrax.Tsit5(), 0.0, 120.0, 0.5, jnp.array([gb, 0.0, 0.0, 0.0, 0.0]),
                              saveat=diffrax.SaveAt(ts=jnp.arange(121.0)), max_steps=100_000,
                              stepsize_controller=diffrax.PIDController(rtol=1e-10, atol=1e-10, jump_ts=jnp.array([15.0, 30, 60, 90])))
    ref = cpb + np.asarray(sol.ys[:, 2]) / cf
    assert np.max(np.abs(cp - ref)) < 0.005  # ng/mL
    assert cp.max() > 3 * cpb  # the load raises C-peptide
    # no load, no insulin change: everything stays basal
    g0, c0 = om.simulate_ogtt(th, jnp.full(5, 6.0), jnp.asarray(gb), 0.0, jnp.asarray(cpb), k["k01"], k["k12"], k["k21"])
    np.testing.assert_allclose(np.asarray(c0), cpb, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(g0), gb, rtol=1e-12)


def test_predicted_median_error_of_the_identifiability_report():
    from types import SimpleNamespace

    from vpop._fit import Param

    prob = SimpleNamespace(params=(Param("a", "1", 1.0), Param("b", "1", 1.0)))
    s = np.array([0.05, 0.4])
    res = SimpleNamespace(problem=prob, covariance_z=np.broadcast_to(np.diag(s ** 2), (10, 2, 2)))
    m = om.predicted_median_abs_relative_error(res)
    from scipy.stats import norm

    for mi, si in zip(m, s):  # P(|e^δ − 1| ≤ m) = ½ for δ ~ N(0, s²)
        assert norm.cdf(np.log1p(mi) / si) - norm.cdf(np.log1p(-mi) / si) == pytest.approx(0.5, abs=1e-9)
    assert m[0] == pytest.approx(0.6745 * 0.05, rel=0.01)
    # a mixture: half the subjects precise, half hopeless → the median error is not 0.6745 × median SE
    cov = np.concatenate([np.broadcast_to(np.diag([0.01, 0.01]), (5, 2, 2)), np.broadcast_to(np.diag([1.0, 1.0]), (5, 2, 2))])
    mm = om.predicted_median_abs_relative_error(SimpleNamespace(problem=prob, covariance_z=cov))
    assert 0.1 < mm[0] < 0.5


@pytest.fixture(scope="module")
def subset_fit(ohashi):
    """24 subjects, 8 per group, fitted once (the check, the CLI and the recovery test reuse the compiled fit)."""
    sub = pd.concat([d.head(8) for _, d in ohashi.groupby("group")])
    table, res = om.fit_ohashi(sub)
    return sub, table, res


def test_gir_check_on_a_subset_and_that_it_can_fail(subset_fit):
    sub, table, _ = subset_fit
    rows = check_ohashi_clamp_gir_prediction(sub)
    assert [r["check"] for r in rows] == ["ohashi_clamp_gir_prediction"] * 2
    assert rows[0]["passed"]  # every fit converged
    assert "NGT (n=7)" in rows[1]["metric"]  # subject 5 lacks its 90-min sample and np.isfinite(rows[1]["value"])
    # GIR replaced by the Matsuda index itself: Matsuda ranks it perfectly, SI cannot beat it
    # C-peptide is fitted: beta-cell responsivity is lower in T2DM than in NGT (Cobelli 2007), the basal
    # index is finite where C-peptide was measured, and NaN-free SEs come with it
    med = table.groupby("group")["phi_s [1e-9/min]"].median()
    assert med["T2DM"] < med["NGT"]
    has_cp = table["c_peptide_0 [ng/mL]"].notna()
    assert np.all(np.isfinite(table.loc[has_cp, "phi_b [1e-9/min]"])) and np.all(table.loc[~has_cp, "phi_b [1e-9/min]"].isna())
    assert np.all(np.isfinite(table["phi_d_se [1e-9]"]))
    rigged = table.assign(**{"gir [mg/kg/min]": table["matsuda [1]"]})
    cor = om.gir_correlations(rigged)
    assert cor["spearman_r_matsuda_vs_GIR"].iloc[0] == pytest.approx(1.0)
    assert cor["spearman_r_SI_vs_GIR"].iloc[0] < 1.0


def test_parameter_recovery_check_small_cohort(subset_fit):
    # 24 people, 5 samples, 3 starts: the shapes of the subset fit, so nothing recompiles
    rows = check_parameter_recovery(24, seed=1, times_min=om.OGTT_TIMES_MIN, n_starts=3)
    assert rows[0]["check"] == "parameter_recovery"
    assert "not identifiable" in rows[0]["metric"] and "24/24 fits converged" in rows[0]["metric"]
    # each parameter is either named as not identifiable or has its own error row
    named = rows[0]["metric"]
    for p in ("SI", "SG", "p2", "ra15", "ra60", "ra90", "ra120", "phi_s", "phi_d", "T_static"):
        assert f"{p} (MdARE" in named or any(f"error {p} [1]" in r["metric"] for r in rows[1:])
    data, truth = om.synthetic_ogtt_cohort(24, seed=3)  # the default 12-sample design (24: the compiled simulation is reused)
    assert data["glucose"].shape == (24, 11) and data["c_peptide"].shape == (24, 11) and np.all(truth["SI"] > 0)
    # the truths are not drawn around the fit's prior centres
    assert om.SYNTHETIC_PARAMETERS["p2"][0] != om.OMM_PARAMS[2].prior_median
    with pytest.raises(ValueError, match="times_min"):
        om.synthetic_ogtt_cohort(5, times_min=[10.0, 20.0])


def test_vpop_fit_cli_matches_the_python_fit_and_resumes(subset_fit, tmp_path):
    from vpop.cli import main

    sub, table, _ = subset_fit  # as above: the compiled fit is reused
    om.ohashi_tidy(sub).to_csv(tmp_path / "ogtt.csv", index=False)
    (tmp_path / "fit.yaml").write_text("name: subset\ndata:\n  csv: ogtt.csv\n  dose_g: 75\n")
    out = tmp_path / "out"
    assert main(["fit", str(tmp_path / "fit.yaml"), "--out", str(out)]) == 0
    params = pd.read_csv(out / "parameters.csv")
    assert list(params.columns) == ["subject", "parameter", "unit", "estimate", "standard_error", "relative_se [1]", "converged"]
    si = params[params["parameter"] == "SI"].set_index("subject")["estimate"]
    np.testing.assert_allclose(si.loc[table["subject"]].to_numpy(), table["SI [1/min per µU/mL]"], rtol=1e-5)  # same optimum (subjects in another order)
    assert (out / "fit.ckpt.npz").exists() and (out / "identifiability.csv").exists()
    # a rerun resumes from the finished checkpoint and writes the same table
    assert main(["fit", str(tmp_path / "fit.yaml"), "--out", str(out)]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(out / "parameters.csv"), params)
    # config errors name the field; unit errors name the column
    (tmp_path / "bad.yaml").write_text("name: x\ndata:\n  csv: ogtt.csv\n  dose_mg: 75\n")
    assert main(["fit", str(tmp_path / "bad.yaml")]) == 2
    tidy = om.ohashi_tidy(sub).rename(columns={"glucose [mg/dL]": "glucose [mmol/L]"})
    with pytest.raises(ValueError, match=r"expected 'glucose \[mg/dL\]'"):
        om.omm_data_from_tidy(tidy)
    tidy = om.ohashi_tidy(sub).rename(columns={"c_peptide [ng/mL]": "c_peptide [pmol/L]"})
    with pytest.raises(ValueError, match=r"expected 'c_peptide \[ng/mL\]'"):
        om.omm_data_from_tidy(tidy)
