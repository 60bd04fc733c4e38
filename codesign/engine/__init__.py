"""The search engine: the job, its trial loop, workers sharing a study, estimators and budgets.

The public entry point is :func:`codesign.search`; the run directory and study
it works on are :mod:`codesign.run`.
"""
