"""Latency models of hardware profiles: features, sampling, measuring, fitting."""
