"""Tables against cross-entropy, statistics, plots and the audit trail, one module each.

* :mod:`~augloss.tables.collect`: :func:`collect` reads every run's ``metrics.json`` (and
  ``provenance.json``) into one DataFrame; :func:`check_consistency`,
  :func:`describe_preprocessing`, ``REQUIRED``, ``CELL`` and :class:`TableError`.
* :mod:`~augloss.tables.comparison`: the comparison table against cross-entropy
  (:class:`Comparison`, :func:`comparison`, :func:`run_values`, :func:`notes`), the loss and
  column ordering, and its Markdown / CSV / LaTeX / HTML (:func:`write_comparison`).
* :mod:`~augloss.tables.render`: LaTeX (booktabs) and HTML from the Markdown cells
  (:func:`booktabs`, :func:`html_page`) and :func:`write_formats`, which writes a table's
  ``.md``, ``.csv``, ``.tex`` and ``.html``.
* :mod:`~augloss.tables.claims`: the claims table (wins / ties / losses, sign and Wilcoxon tests).
* :mod:`~augloss.tables.search`: the search table.
* :mod:`~augloss.tables.correlation`: the cross-augmentation rank correlation table with its
  noise ceiling (from the correlation study's ``correlation.json``).
* :mod:`~augloss.tables.specificity`: does a loss do relatively better under the augmentation
  it was found for (the diagonal advantage, its permutation test and the ANOVA interaction)?
* :mod:`~augloss.tables.validity`: does the surrogate rank the losses as the transfer stage
  does (Spearman ρ of fresh-seed surrogate fitness and transfer accuracy)?
* :mod:`~augloss.tables.plots`: learning curves, evolution, Δ heatmap, correlation and probe plots.
* :mod:`~augloss.tables.audit`: the audit trail (:func:`audit`, :func:`write_audit`).

Nothing is re-exported here: import the submodule you need, e.g.
``from augloss.tables import comparison`` or ``from augloss.tables.audit import write_audit``.
Imports go one way: collect and render at the bottom, comparison on them, claims / search /
correlation / specificity / validity / plots / audit on those.
"""
