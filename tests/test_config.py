"""Configs are validated before any compute, with errors that name the field."""

import copy
from pathlib import Path

import pytest
import yaml

import vpop
from vpop._config import ConfigError, load_config, load_study_config, parse_config

ROOT = Path(__file__).resolve().parents[1]

BASE = {
    "name": "t",
    "seed": 3,
    "mode": "fast",
    "protocol": {"kind": "ogtt", "glucose_g": 75, "duration_min": 180},
    "cohorts": [{"name": "a", "parameter_set": "DallaMan2007_normal", "n_people": 4}],
}


def cfg(**changes):
    d = copy.deepcopy(BASE)
    for path, value in changes.items():
        node = d
        keys = path.split("__")
        for k in keys[:-1]:
            node = node[int(k)] if k.isdigit() else node[k]
        last = keys[-1]
        if value is KeyError:
            del node[last]
        else:
            node[last] = value
    return d


def test_embedded_default_and_examples_validate():
    from vpop._population_study import PopulationStudyConfig

    default = load_study_config(None)
    assert isinstance(default, PopulationStudyConfig) and len(default.arms) >= 2 and default.population == "us_adults"
    examples = sorted((ROOT / "configs").glob("*.yaml"))
    assert len(examples) >= 2, "configs/ has example configs"
    kinds = {type(load_study_config(p)).__name__ for p in examples}
    assert kinds == {"StudyConfig", "PopulationStudyConfig"}
    ogtt = load_config(ROOT / "configs" / "ogtt_normal_vs_t2d.yaml")
    assert ogtt.cohorts and ogtt.build_protocol().n_intervals > 0


def test_repo_default_equals_embedded_default():
    embedded = load_study_config(None)
    assert load_study_config(ROOT / "configs" / "default_study.yaml") == embedded


@pytest.mark.parametrize(
    "changes, needle",
    [
        ({"cohorts__0__n_peopel": 3}, "n_peopel"),  # unknown key (typo)
        ({"protocol": {"kind": "meals", "duration_min": 300, "meals": [{"time_min": 0, "carbs_mg": 50}]}}, "carbs_mg"),  # wrong unit suffix
        ({"protocol": {"kind": "meals", "duration_min": 300, "meals": [{"time_min": 0, "carbs_g": -5}]}}, "carbs_g"),  # negative meal
        ({"protocol": {"kind": "meals", "duration_min": 300, "meals": [{"time_min": 0.5, "carbs_g": 5}]}}, "grid"),  # off grid
        ({"cohorts__0__overrides": {"Vmx": -0.01}}, "Vmx"),  # non-positive parameter
        ({"cohorts__0__overrides": {"kabs": 0}}, "kabs"),  # zero rate
        ({"cohorts__0__overrides": {"Vmx": "0.05 1/min"}}, "wrong unit"),  # wrong unit
        ({"cohorts__0__overrides": {"Vmax": 0.05}}, "Vmax"),  # unknown parameter
        ({"cohorts__0__parameter_set": "Nobody2020"}, "Nobody2020"),
        ({"cohorts__0__n_people": 0}, "n_people"),
        ({"mode": "turbo"}, "mode"),
        ({"cohorts__0__variability": {"cv": {"Vmx": -1}}}, "cv"),
        ({"cohorts__0__variability": {"cv": {"Vmx": 0.2}, "correlations": [{"a": "Vmx", "b": "kp3", "rho": 0.5}]}}, "kp3"),
        ({"protocol": {"kind": "ogtt", "duration_min": 60}}, "duration_min"),
    ],
)
def test_bad_configs_name_the_field(changes, needle):
    with pytest.raises(ConfigError) as e:
        parse_config(cfg(**changes))
    assert needle in str(e.value)


def test_override_with_correct_unit_string_is_accepted():
    c = parse_config(cfg(cohorts__0__overrides={"Vmx": "0.05 mg/kg/min per pmol/L"}))
    assert c.cohorts[0].override_values() == {"Vmx": 0.05}


def test_derived_basal_values_cannot_be_overridden():
    c = parse_config(cfg(cohorts__0__overrides={"Gb": 100.0}))
    with pytest.raises(ValueError, match="derived"):
        vpop.sample_population("DallaMan2007_normal", 2, overrides=c.cohorts[0].override_values())


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="YAML"):
        load_config(bad)
    notmap = tmp_path / "list.yaml"
    notmap.write_text(yaml.safe_dump([1, 2]))
    with pytest.raises(ConfigError, match="mapping"):
        load_config(notmap)
