"""Dagster assets, one module per asset and named after it: each reads its inputs, calls ops/, writes,
and returns a small typed value (assets/values.py) with metadata for the UI."""
