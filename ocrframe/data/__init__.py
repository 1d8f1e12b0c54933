"""Datasets, transforms and batching."""
