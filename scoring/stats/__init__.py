"""Pure statistics for blind A/B human evaluation.

Every module in this package takes plain data (numpy arrays, sequences, frozen dataclasses) and
returns plain data (frozen dataclasses with float fields, tuples, dicts). None of them imports
Django, DRF, Celery, torch, transformers or anything under ``annotations``; an import-linter
contract in ``pyproject.toml`` enforces it. Randomness only enters through an explicit
``numpy.random.Generator`` argument, so every result is reproducible from its seed.

Data conventions
----------------
* ``reliability_data``: ratings matrix of shape ``(raters, items)`` with ``np.nan`` for a missing
  vote, the convention of the ``krippendorff`` package.
* Preference votes in an A/B study are coded by the preferred system (see :mod:`.votes`):
  ``0`` = base, ``1`` = tuned, ``2`` = tie, ``3`` = both bad (a nominal variable).

Modules
-------
* :mod:`.votes` -- preference coding, vote records, majority vote, long -> matrix conversion.
* :mod:`.agreement` -- Krippendorff's alpha (fast bootstrap), Fleiss' kappa, pairwise Cohen's
  kappa, percent agreement, Gwet's AC1/AC2, each with an item-bootstrap CI.
* :mod:`.winrate` -- vote-level win rate with Wilson and bootstrap CIs, sign test, and the
  length-adjusted win rate (single-pair logistic fit, item-clustered CI).
* :mod:`.clustered` -- item totals, cluster-robust variance, exact sign-flip test, score interval.
* :mod:`.winrate_inference` -- the win rate with item-clustered and panel intervals, and the
  deterministic release-gate criterion.
* :mod:`.power` -- items needed for a study, and what a planned study can detect.
* :mod:`.raters` -- per-rater quality statistics and flags.
* :mod:`.sequential` -- group-sequential (Lan-DeMets O'Brien-Fleming) and Bayesian stopping.
* :mod:`.adaptive` -- adaptive overlap: how many more votes an item needs.
* :mod:`.reconcile` -- human majority vs LLM judge, human preference vs automatic metrics.
"""
