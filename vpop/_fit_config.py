"""``vpop fit CONFIG``: a pydantic-validated fit config (extra keys forbidden) → parameter table with SEs.

Example config (YAML)::

    name: my_ogtt_fit
    model: oral_minimal_model        # the only model so far: OMM glucose + Breda C-peptide (vpop._ohashi)
    data:
      csv: ogtt.csv                  # tidy: subject, time [min], glucose [mg/dL], insulin [µU/mL],
                                     # c_peptide [ng/mL], body_weight [kg], age [years], bmi [kg/m2],
                                     # type_2_diabetes [1] (vpop._ohashi.omm_data_from_tidy)
      dose_g: 75
    fit:
      n_starts: 3
      max_iter: 400
      checkpoint_every: 100
      seed: 0

``data.dataset: ohashi2018`` uses the shipped Ohashi OGTTs instead of a CSV. Outputs in the output
directory: ``parameters.csv`` (subject, parameter, unit, estimate, standard_error, relative_se,
converged), ``identifiability.csv``, ``report.json`` (convergence, config) and ``fit.ckpt.npz``,
the checkpoint a rerun resumes from.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FitData(_Strict):
    csv: str | None = None
    dataset: Literal["ohashi2018"] | None = None
    dose_g: float = Field(75.0, ge=1.0, le=200.0)

    @model_validator(mode="after")
    def _one_source(self):
        if (self.csv is None) == (self.dataset is None):
            raise ValueError("give exactly one of data.csv or data.dataset")
        return self


class FitOptions(_Strict):
    n_starts: int = Field(3, ge=1, le=100)
    max_iter: int = Field(400, ge=1, le=100_000)
    checkpoint_every: int = Field(100, ge=1)
    seed: int = 0
    gtol: float = Field(1e-6, gt=0)


class FitConfig(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    model: Literal["oral_minimal_model"] = "oral_minimal_model"
    data: FitData
    fit: FitOptions = FitOptions()


def load_fit_config(path) -> FitConfig:
    """Read and validate a fit config; errors name the field (``ValueError``)."""
    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text())
    except FileNotFoundError:
        raise ValueError(f"config file {p} not found") from None
    try:
        cfg = FitConfig.model_validate(raw or {})
    except ValidationError as e:
        lines = [f"  - {'.'.join(map(str, err['loc'])) or '<root>'}: {err['msg']}" for err in e.errors()]
        raise ValueError(f"invalid fit config {p}:\n" + "\n".join(lines)) from None
    if cfg.data.csv is not None and not Path(cfg.data.csv).is_absolute():
        cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"csv": str(p.parent / cfg.data.csv)})})
    return cfg


def run_fit(cfg: FitConfig, out) -> dict:
    """Fit, write the outputs to ``out`` and return the report."""
    import pandas as pd

    from ._fit import fit_individuals
    from ._ohashi import OMM_PROBLEM, ohashi_tidy, omm_data_from_tidy

    df = ohashi_tidy() if cfg.data.dataset == "ohashi2018" else pd.read_csv(cfg.data.csv)
    if cfg.data.dataset == "ohashi2018":
        df = df[df.groupby("subject")["glucose [mg/dL]"].transform(lambda s: s.notna().any())]
    subjects, data = omm_data_from_tidy(df, cfg.data.dose_g)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    o = cfg.fit
    res = fit_individuals(OMM_PROBLEM, data, subjects=subjects, n_starts=o.n_starts, max_iter=o.max_iter,
                          checkpoint_every=o.checkpoint_every, seed=o.seed, gtol=o.gtol, checkpoint=out / "fit.ckpt.npz")
    res.table().to_csv(out / "parameters.csv", index=False)
    res.identifiable().to_csv(out / "identifiability.csv", index=False)
    report = {"name": cfg.name, "model": cfg.model, "convergence": res.convergence_report(), "config": cfg.model_dump()}
    (out / "report.json").write_text(json.dumps(report, indent=2))
    return report
