"""Exercise bouts in study configs: the whole-body cohort switches to DallaMan2007Exercise."""

from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _config(exercise, n=6):
    from vpop._config import parse_config

    return parse_config({
        "name": "ex", "seed": 3, "mode": "fast", "save_every_min": 5.0,
        "protocol": {"kind": "mixed_meals", "days": 1, "exercise": exercise},
        "cohorts": [{"name": "normal", "parameter_set": "DallaMan2007_normal", "n_people": n,
                     "variability": {"cv": {"Vmx": 0.3, "beta": 0.3}}}],
        "outputs": {"traces": True, "figure": False},
    })


def test_study_with_exercise_runs_the_exercise_model_and_lowers_afternoon_glucose():
    from vpop._study import run_study

    bout = [{"start_min": 960, "duration_min": 60, "intensity_pct_vo2max": 50}]
    with_ex, without = run_study(_config(bout), progress=False), run_study(_config([]), progress=False)
    assert "param.ex_A [1/(bpm·min)]" in with_ex.summary.columns
    assert "param.ex_A [1/(bpm·min)]" not in without.summary.columns
    assert (with_ex.summary["status"] == "OK").all()
    tr = [r.traces.pivot_table(index="time [min]", columns="person", values="glucose [mg/dL]") for r in (with_ex, without)]
    before, after = tr[0].loc[:955], tr[0].loc[990:1080]
    assert np.allclose(before.to_numpy(), tr[1].loc[:955].to_numpy(), atol=1e-4)  # identical before the bout
    assert (after.to_numpy() < tr[1].loc[990:1080].to_numpy() - 1.0).all()  # lower during the bout and after it


def test_exercise_config_errors_name_the_field():
    from vpop._config import ConfigError

    with pytest.raises(ConfigError, match="grid"):
        _config([{"start_min": 962, "duration_min": 60, "intensity_pct_vo2max": 50}])
    with pytest.raises(ConfigError, match="intensity_pct_vo2max"):
        _config([{"start_min": 960, "duration_min": 60, "intensity_pct_vo2max": 150}])


def test_models_without_exercise_terms_are_refused():
    import vpop
    from vpop.models._dallaman2007_exercise import with_protocol_exercise

    prot = vpop.Protocol(120.0, (), 1.0, exercise=(vpop.ExerciseBout(0.0, 30.0, 50.0),))
    model, params, _ = vpop.sample_population("DallaMan2007_normal", 2, seed=0)
    m2, _ = with_protocol_exercise(vpop.models.UvaPadova2008(), params, vpop.fasting(60.0))
    assert isinstance(m2, vpop.models.UvaPadova2008)  # no bouts: unchanged
    with pytest.raises(ValueError, match="no exercise terms"):
        with_protocol_exercise(vpop.models.UvaPadova2008(), params, prot)
    assert type(with_protocol_exercise(model, params, prot)[0]).__name__ == "DallaMan2007Exercise"


def test_example_config_validates():
    from vpop._config import load_config

    cfg = load_config(ROOT / "configs" / "exercise_afternoon.yaml")
    assert cfg.build_protocol().exercise_pct_vo2max().sum() == 45 * 50


def test_streamed_study_with_exercise_matches_the_in_memory_columns(tmp_path):
    import pandas as pd

    from vpop._stream import stream_study

    bout = [{"start_min": 960, "duration_min": 60, "intensity_pct_vo2max": 50}]
    cfg = _config(bout, n=10).model_copy(update={"stream": True, "chunk_size": 8})
    cfg = cfg.model_copy(update={"outputs": cfg.outputs.model_copy(update={"traces": False, "figure": False})})
    out = stream_study(cfg, tmp_path / "out", progress=False)
    df = pd.read_parquet(out / "summary.parquet")
    assert len(df) == 10 and (df["status"] == "OK").all() and "param.ex_A [1/(bpm·min)]" in df.columns
