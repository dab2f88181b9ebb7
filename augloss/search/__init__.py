"""The loss-function search, one module per responsibility.

* :mod:`.evolution`: :class:`Search`, the regularized evolution as named phases;
* :mod:`.breed`: members, tournaments, mutants and the duplicate tests;
* :mod:`.evaluator`: the :class:`Evaluator` protocol and :class:`SurrogateEvaluator` (cached);
* :mod:`.lockstep`: several searches advanced together, one stacked call per round;
* :mod:`.state`: the resumable state and history (:class:`StateStore`);
* :mod:`.summary`: the reports, a pure function of the state;
* :mod:`.status`: the one status vocabulary;
* :mod:`.cost`: what a search cost, measured, and full searches projected;
* :mod:`.correlation`: the cross-augmentation study.

The names below load on first use (PEP 562), so that a torch-free job (the search-cost table
reads :mod:`.cost`) does not import torch through the evaluator.
"""

import importlib

# The package's public API (what scripts, benchmarks and tests use through ``augloss.search``),
# each with the module that defines it.
_EXPORTS = {
    "Evaluator": "augloss.search.evaluator", "FitnessConfig": "augloss.config",
    "Search": "augloss.search.evolution", "SearchConfig": "augloss.config",
    "SearchStateError": "augloss.search.state", "StateStore": "augloss.search.state",
    "SurrogateEvaluator": "augloss.search.evaluator",
    "correlation_study": "augloss.search.correlation",
    "gradient_fingerprint": "augloss.search.breed", "reports": "augloss.search.summary",
    "top_losses": "augloss.search.summary",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    else:
        try:
            value = importlib.import_module(f"{__name__}.{name}")  # a submodule
        except ModuleNotFoundError:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
