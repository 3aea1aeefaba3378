"""Ensembles over a study's trained trials, and distillation of a teacher into a searched student (Model Search)."""
