"""Datasets: readers for real scenes, the synthetic default, splits, preparation, patch serving."""
