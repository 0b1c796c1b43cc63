"""The weak-to-strong method library (see :mod:`w2slab.methods.base` for what a method is).

Importing this package imports every module in it, which registers every built-in method and the stage kinds of
those that own one (each in its method's file, :mod:`w2slab.methods.stage_api`): a new method is one new file here,
listed nowhere else. ``w2s methods`` lists them.
"""

import importlib
import pkgutil

from w2slab.methods.base import (
    LABEL_SOURCES,
    METHODS,
    ChainMethod,
    LabelMethod,
    LeakageError,
    Method,
    RelabelContext,
    SelectionMethod,
    SoftLabels,
    StageBuilder,
    StageNode,
    SupervisorMethod,
    check_method,
    make_method,
    register_method,
)
from w2slab.methods.stage_api import StageContext, register_stage

__all__ = ["LABEL_SOURCES", "METHODS", "ChainMethod", "LabelMethod", "LeakageError", "Method", "RelabelContext",
           "SelectionMethod", "SoftLabels", "StageBuilder", "StageContext", "StageNode", "SupervisorMethod",
           "check_method", "make_method", "register_method", "register_stage"]

for _module in pkgutil.iter_modules(__path__):  # in name order: baselines, boosting, chains, ...
    importlib.import_module(f"{__name__}.{_module.name}")
