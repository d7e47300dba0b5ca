"""Metrics and comparisons: pure functions over arrays, images and scores. No I/O here."""
