"""Dagster software-defined assets, one module per zone or stage of the lake."""
