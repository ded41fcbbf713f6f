"""Models: pure vector fields on named states, with parameter modules and spec tables."""

from ._dallaman2007 import (
    FLUX_UNITS as FLUX_UNITS,
    PARAMETER_SPECS as DALLAMAN2007_PARAMETER_SPECS,
    STATE_SYMBOLS as STATE_SYMBOLS,
    STATE_UNITS as STATE_UNITS,
    DallaMan2007 as DallaMan2007,
    DallaMan2007Params as DallaMan2007Params,
    DallaManFluxes as DallaManFluxes,
    DallaManInputs as DallaManInputs,
    DallaManState as DallaManState,
)

from ._uvapadova2008 import (
    PARAMETER_SPECS as UVAPADOVA2008_PARAMETER_SPECS,
    UvaPadova2008 as UvaPadova2008,
    UvaPadova2008Params as UvaPadova2008Params,
    UvaPadovaInputs as UvaPadovaInputs,
    UvaPadovaState as UvaPadovaState,
)

from ._topp2000 import (
    TOPP2000_VALUES as TOPP2000_VALUES,
    Topp2000 as Topp2000,
    Topp2000Params as Topp2000Params,
    Topp2000State as Topp2000State,
    simulate_topp2000 as simulate_topp2000,
)

from ._betacell import (
    BETACELL_DEFAULTS as BETACELL_DEFAULTS,
    BETACELL_PARAMETER_SPECS as BETACELL_PARAMETER_SPECS,
    BetaCellParams as BetaCellParams,
    BetaCellState as BetaCellState,
    DallaMan2007Mechanistic as DallaMan2007Mechanistic,
    DallaMan2007MechanisticParams as DallaMan2007MechanisticParams,
    dallaman_secretion_map as dallaman_secretion_map,
    simulate_betacell as simulate_betacell,
)

from ._liver import (
    LIVER_DEFAULTS as LIVER_DEFAULTS,
    LIVER_PARAMETER_SPECS as LIVER_PARAMETER_SPECS,
    LiverParams as LiverParams,
    liver_fluxes as liver_fluxes,
    simulate_liver as simulate_liver,
)

from ._counterregulation import (
    COUNTERREGULATION_DEFAULTS as COUNTERREGULATION_DEFAULTS,
    COUNTERREGULATION_PARAMETER_SPECS as COUNTERREGULATION_PARAMETER_SPECS,
    CounterregulationParams as CounterregulationParams,
    simulate_counterregulation as simulate_counterregulation,
)

from ._dallaman2007_liver import (
    DallaMan2007Liver as DallaMan2007Liver,
    DallaMan2007LiverParams as DallaMan2007LiverParams,
    DallaManLiverState as DallaManLiverState,
    DallaMan2007MechanisticLiver as DallaMan2007MechanisticLiver,
)

from ._dallaman2007_exercise import (
    DallaMan2007Exercise as DallaMan2007Exercise,
    DallaMan2007ExerciseParams as DallaMan2007ExerciseParams,
    DallaMan2007LiverExercise as DallaMan2007LiverExercise,
    DallaMan2007LiverExerciseParams as DallaMan2007LiverExerciseParams,
    dallaman_exercise_params as dallaman_exercise_params,
    liver_exercise_params as liver_exercise_params,
)
from ._uvapadova2008_exercise import (
    EXERCISE_DEFAULTS as EXERCISE_DEFAULTS,
    EXERCISE_PARAMETER_SPECS as EXERCISE_PARAMETER_SPECS,
    UvaPadova2008Exercise as UvaPadova2008Exercise,
    UvaPadova2008ExerciseParams as UvaPadova2008ExerciseParams,
    with_exercise as with_exercise,
)

#: Models by name, as used in configs and parameter-set files.
MODELS = {"DallaMan2007": DallaMan2007, "UvaPadova2008": UvaPadova2008}

__all__ = [
    "MODELS",
    "DallaMan2007",
    "DallaMan2007Params",
    "DallaManState",
    "DallaManFluxes",
    "DallaManInputs",
    "DALLAMAN2007_PARAMETER_SPECS",
    "STATE_UNITS",
    "STATE_SYMBOLS",
    "FLUX_UNITS",
    "UvaPadova2008",
    "UvaPadova2008Params",
    "UvaPadovaInputs",
    "UvaPadovaState",
    "UVAPADOVA2008_PARAMETER_SPECS",
    "Topp2000",
    "Topp2000Params",
    "Topp2000State",
    "TOPP2000_VALUES",
    "simulate_topp2000",
    "BETACELL_DEFAULTS",
    "BETACELL_PARAMETER_SPECS",
    "BetaCellParams",
    "BetaCellState",
    "DallaMan2007Mechanistic",
    "DallaMan2007MechanisticParams",
    "dallaman_secretion_map",
    "simulate_betacell",
    "LIVER_DEFAULTS",
    "LIVER_PARAMETER_SPECS",
    "LiverParams",
    "liver_fluxes",
    "simulate_liver",
    "COUNTERREGULATION_DEFAULTS",
    "COUNTERREGULATION_PARAMETER_SPECS",
    "CounterregulationParams",
    "simulate_counterregulation",
    "DallaMan2007Liver",
    "DallaMan2007LiverParams",
    "DallaManLiverState",
    "DallaMan2007MechanisticLiver",
    "DallaMan2007Exercise",
    "DallaMan2007ExerciseParams",
    "DallaMan2007LiverExercise",
    "DallaMan2007LiverExerciseParams",
    "dallaman_exercise_params",
    "liver_exercise_params",
    "EXERCISE_DEFAULTS",
    "EXERCISE_PARAMETER_SPECS",
    "UvaPadova2008Exercise",
    "UvaPadova2008ExerciseParams",
    "with_exercise",
]
