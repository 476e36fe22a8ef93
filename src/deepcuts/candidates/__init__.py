"""Candidate sources, each returning scored items with its name kept (for explanations)."""
