"""Experiment configs (ml_collections). `from configs import base` works from the repo root."""
