"""Categorization: header evidence first, then a small local model scored in plain Python."""
