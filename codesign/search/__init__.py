"""The Optuna study: run directory, sampler, storage and the trial loop."""
