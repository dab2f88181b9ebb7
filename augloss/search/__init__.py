"""The loss-function search, one module per responsibility.

* :mod:`.evolution`: :class:`Search`, the regularized evolution as named phases;
* :mod:`.breed`: members, tournaments, mutants and the duplicate tests;
* :mod:`.evaluator`: the :class:`Evaluator` protocol and :class:`SurrogateEvaluator` (cached);
* :mod:`.state`: the resumable state and history (:class:`StateStore`);
* :mod:`.summary`: the reports, a pure function of the state;
* :mod:`.status`: the one status vocabulary;
* :mod:`.correlation`: the cross-augmentation study.
"""

from augloss.config import FitnessConfig, SearchConfig
from augloss.search.breed import gradient_fingerprint
from augloss.search.correlation import correlation_study
from augloss.search.evaluator import Evaluator, SurrogateEvaluator
from augloss.search.evolution import Search
from augloss.search.state import SearchStateError, StateStore
from augloss.search.summary import reports, top_losses

# The package's public API (what scripts, benchmarks and tests use through ``augloss.search``).
__all__ = [
    "Evaluator", "FitnessConfig", "Search", "SearchConfig", "SearchStateError", "StateStore",
    "SurrogateEvaluator", "correlation_study", "gradient_fingerprint", "reports", "top_losses",
]
