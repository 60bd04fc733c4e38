"""The run's outputs: Pareto front, JSON/CSV, models with manifests, tables, the report."""
