"""Models: pure vector fields on named states, with parameter modules and spec tables."""

from ._betacell import (
    BETACELL_DEFAULTS as BETACELL_DEFAULTS,
)
from ._betacell import (
    BETACELL_PARAMETER_SPECS as BETACELL_PARAMETER_SPECS,
)
from ._betacell import (
    BetaCellParams as BetaCellParams,
)
from ._betacell import (
    BetaCellState as BetaCellState,
)
from ._betacell import (
    DallaMan2007Mechanistic as DallaMan2007Mechanistic,
)
from ._betacell import (
    DallaMan2007MechanisticParams as DallaMan2007MechanisticParams,
)
from ._betacell import (
    dallaman_secretion_map as dallaman_secretion_map,
)
from ._betacell import (
    simulate_betacell as simulate_betacell,
)
from ._counterregulation import (
    COUNTERREGULATION_DEFAULTS as COUNTERREGULATION_DEFAULTS,
)
from ._counterregulation import (
    COUNTERREGULATION_PARAMETER_SPECS as COUNTERREGULATION_PARAMETER_SPECS,
)
from ._counterregulation import (
    CounterregulationParams as CounterregulationParams,
)
from ._counterregulation import (
    simulate_counterregulation as simulate_counterregulation,
)
from ._dallaman2007 import (
    FLUX_UNITS as FLUX_UNITS,
)
from ._dallaman2007 import (
    PARAMETER_SPECS as DALLAMAN2007_PARAMETER_SPECS,
)
from ._dallaman2007 import (
    STATE_SYMBOLS as STATE_SYMBOLS,
)
from ._dallaman2007 import (
    STATE_UNITS as STATE_UNITS,
)
from ._dallaman2007 import (
    DallaMan2007 as DallaMan2007,
)
from ._dallaman2007 import (
    DallaMan2007Params as DallaMan2007Params,
)
from ._dallaman2007 import (
    DallaManFluxes as DallaManFluxes,
)
from ._dallaman2007 import (
    DallaManInputs as DallaManInputs,
)
from ._dallaman2007 import (
    DallaManState as DallaManState,
)
from ._dallaman2007_exercise import (
    DallaMan2007Exercise as DallaMan2007Exercise,
)
from ._dallaman2007_exercise import (
    DallaMan2007ExerciseParams as DallaMan2007ExerciseParams,
)
from ._dallaman2007_exercise import (
    DallaMan2007LiverExercise as DallaMan2007LiverExercise,
)
from ._dallaman2007_exercise import (
    DallaMan2007LiverExerciseParams as DallaMan2007LiverExerciseParams,
)
from ._dallaman2007_exercise import (
    dallaman_exercise_params as dallaman_exercise_params,
)
from ._dallaman2007_exercise import (
    liver_exercise_params as liver_exercise_params,
)
from ._dallaman2007_liver import (
    DallaMan2007Liver as DallaMan2007Liver,
)
from ._dallaman2007_liver import (
    DallaMan2007LiverParams as DallaMan2007LiverParams,
)
from ._dallaman2007_liver import (
    DallaMan2007MechanisticLiver as DallaMan2007MechanisticLiver,
)
from ._dallaman2007_liver import (
    DallaManLiverState as DallaManLiverState,
)
from ._liver import (
    LIVER_DEFAULTS as LIVER_DEFAULTS,
)
from ._liver import (
    LIVER_PARAMETER_SPECS as LIVER_PARAMETER_SPECS,
)
from ._liver import (
    LiverParams as LiverParams,
)
from ._liver import (
    liver_fluxes as liver_fluxes,
)
from ._liver import (
    simulate_liver as simulate_liver,
)
from ._topp2000 import (
    TOPP2000_VALUES as TOPP2000_VALUES,
)
from ._topp2000 import (
    Topp2000 as Topp2000,
)
from ._topp2000 import (
    Topp2000Params as Topp2000Params,
)
from ._topp2000 import (
    Topp2000State as Topp2000State,
)
from ._topp2000 import (
    simulate_topp2000 as simulate_topp2000,
)
from ._uvapadova2008 import (
    PARAMETER_SPECS as UVAPADOVA2008_PARAMETER_SPECS,
)
from ._uvapadova2008 import (
    UvaPadova2008 as UvaPadova2008,
)
from ._uvapadova2008 import (
    UvaPadova2008Params as UvaPadova2008Params,
)
from ._uvapadova2008 import (
    UvaPadovaInputs as UvaPadovaInputs,
)
from ._uvapadova2008 import (
    UvaPadovaState as UvaPadovaState,
)
from ._uvapadova2008_exercise import (
    EXERCISE_DEFAULTS as EXERCISE_DEFAULTS,
)
from ._uvapadova2008_exercise import (
    EXERCISE_PARAMETER_SPECS as EXERCISE_PARAMETER_SPECS,
)
from ._uvapadova2008_exercise import (
    UvaPadova2008Exercise as UvaPadova2008Exercise,
)
from ._uvapadova2008_exercise import (
    UvaPadova2008ExerciseParams as UvaPadova2008ExerciseParams,
)
from ._uvapadova2008_exercise import (
    with_exercise as with_exercise,
)

#: Models by name, as used in configs and parameter-set files.
MODELS = {"DallaMan2007": DallaMan2007, "UvaPadova2008": UvaPadova2008}

__all__ = [
    "BETACELL_DEFAULTS",
    "BETACELL_PARAMETER_SPECS",
    "COUNTERREGULATION_DEFAULTS",
    "COUNTERREGULATION_PARAMETER_SPECS",
    "DALLAMAN2007_PARAMETER_SPECS",
    "EXERCISE_DEFAULTS",
    "EXERCISE_PARAMETER_SPECS",
    "FLUX_UNITS",
    "LIVER_DEFAULTS",
    "LIVER_PARAMETER_SPECS",
    "MODELS",
    "STATE_SYMBOLS",
    "STATE_UNITS",
    "TOPP2000_VALUES",
    "UVAPADOVA2008_PARAMETER_SPECS",
    "BetaCellParams",
    "BetaCellState",
    "CounterregulationParams",
    "DallaMan2007",
    "DallaMan2007Exercise",
    "DallaMan2007ExerciseParams",
    "DallaMan2007Liver",
    "DallaMan2007LiverExercise",
    "DallaMan2007LiverExerciseParams",
    "DallaMan2007LiverParams",
    "DallaMan2007Mechanistic",
    "DallaMan2007MechanisticLiver",
    "DallaMan2007MechanisticParams",
    "DallaMan2007Params",
    "DallaManFluxes",
    "DallaManInputs",
    "DallaManLiverState",
    "DallaManState",
    "LiverParams",
    "Topp2000",
    "Topp2000Params",
    "Topp2000State",
    "UvaPadova2008",
    "UvaPadova2008Exercise",
    "UvaPadova2008ExerciseParams",
    "UvaPadova2008Params",
    "UvaPadovaInputs",
    "UvaPadovaState",
    "dallaman_exercise_params",
    "dallaman_secretion_map",
    "liver_exercise_params",
    "liver_fluxes",
    "simulate_betacell",
    "simulate_counterregulation",
    "simulate_liver",
    "simulate_topp2000",
    "with_exercise",
]
