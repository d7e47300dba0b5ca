"""LLM scores: the table model, readers for OpenCompass outputs and our JSON, and score suites."""

from accuracy.scores.model import Score, ScoreTable
from accuracy.scores.readers import read_scores

__all__ = ["Score", "ScoreTable", "read_scores"]
