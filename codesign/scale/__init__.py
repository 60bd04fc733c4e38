"""Scaling out: helpers around many workers on one study (a throwaway PostgreSQL)."""
