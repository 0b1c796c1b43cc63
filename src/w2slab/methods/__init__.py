"""The weak-to-strong method library (see :mod:`w2slab.methods.base` for what a method is).

Importing this package registers every built-in method; ``w2s methods`` lists them.
"""

from w2slab.methods import (  # noqa: F401 - registers the built-ins
    baselines,
    boosting,
    chains,
    relabel,
    selection,
    selective,
    supervisors,
    trust,
    unsupervised,
)
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

__all__ = ["LABEL_SOURCES", "METHODS", "ChainMethod", "LabelMethod", "LeakageError", "Method", "RelabelContext",
           "SelectionMethod", "SoftLabels", "StageBuilder", "StageNode", "SupervisorMethod", "check_method",
           "make_method", "register_method"]
