"""vpop: virtual-population simulation of human glucose–insulin physiology in JAX.

vpop turns on ``jax_enable_x64`` when imported: reference checks run in float64, and the fast mode
casts its arrays to float32 explicitly, so both precisions are available in one process.
"""

import jax as _jax

_jax.config.update("jax_enable_x64", True)

from . import models as models
from ._engine import (
    MODES as MODES,
    SimulationResult as SimulationResult,
    Status as Status,
    people_mesh as people_mesh,
    select_people as select_people,
    simulate as simulate,
    use_devices as use_devices,
)
from ._observables import (
    auc as auc,
    homa_beta_percent as homa_beta_percent,
    homa_ir as homa_ir,
    incremental_auc as incremental_auc,
    matsuda_index as matsuda_index,
    peak as peak,
    summarize as summarize,
    traces as traces,
)
from ._parameters import (
    ParameterSet as ParameterSet,
    ParamSpec as ParamSpec,
    available_parameter_sets as available_parameter_sets,
    load_parameter_set as load_parameter_set,
)
from ._population import sample_population as sample_population
from ._protocols import ExerciseBout as ExerciseBout, Meal as Meal, Protocol as Protocol, fasting as fasting, mixed_meals as mixed_meals, ogtt as ogtt
from ._sets import build_model as build_model, parameters_from_set as parameters_from_set
from ._glycemic import glycemic_metrics as glycemic_metrics, glycemic_table as glycemic_table
from ._t1d import (
    CGM as CGM,
    AbstractController as AbstractController,
    Action as Action,
    BasalBolus as BasalBolus,
    ExerciseEvent as ExerciseEvent,
    FunctionController as FunctionController,
    InsulinProtocol as InsulinProtocol,
    MealEvent as MealEvent,
    Observation as Observation,
    PatientInfo as PatientInfo,
    HybridClosedLoop as HybridClosedLoop,
    PIDController as PIDController,
    Pump as Pump,
    T1DCohort as T1DCohort,
    T1DResult as T1DResult,
    T1DScenario as T1DScenario,
    load_patients as load_patients,
    patient_table as patient_table,
    sample_t1d_patients as sample_t1d_patients,
    simulate_t1d as simulate_t1d,
    uva_padova_cohort as uva_padova_cohort,
)

from ._covariates import CovariateModel as CovariateModel, Covariates as Covariates, sample_covariates as sample_covariates
from ._diagnosis import ada_classification as ada_classification, hba1c_percent as hba1c_percent
from ._virtual_population import (
    EffectSpec as EffectSpec,
    PopulationConfig as PopulationConfig,
    available_populations as available_populations,
    draw_population as draw_population,
    load_population as load_population,
)
from ._calibrate import calibrate as calibrate
from ._population_study import (
    PopulationStudyConfig as PopulationStudyConfig,
    run_population_study as run_population_study,
    write_population_results as write_population_results,
)

__version__ = "0.1.0"

__all__ = [
    "models", "MODES", "SimulationResult", "Status", "people_mesh", "select_people", "simulate", "use_devices",
    "auc", "homa_beta_percent", "homa_ir", "incremental_auc", "matsuda_index", "peak", "summarize", "traces",
    "ParameterSet", "ParamSpec", "available_parameter_sets", "load_parameter_set",
    "sample_population", "ExerciseBout", "Meal", "Protocol", "fasting", "mixed_meals", "ogtt",
    "build_model", "parameters_from_set", "__version__",
    "glycemic_metrics", "glycemic_table",
    "CGM", "AbstractController", "Action", "BasalBolus", "ExerciseEvent", "FunctionController", "InsulinProtocol", "MealEvent",
    "HybridClosedLoop", "Observation", "PatientInfo", "PIDController", "Pump", "T1DCohort", "T1DResult", "T1DScenario",
    "load_patients", "patient_table", "sample_t1d_patients", "simulate_t1d", "uva_padova_cohort",
    "CovariateModel", "Covariates", "sample_covariates", "ada_classification", "hba1c_percent",
    "EffectSpec", "PopulationConfig", "available_populations", "draw_population", "load_population", "calibrate",
    "PopulationStudyConfig", "run_population_study", "write_population_results",
]
