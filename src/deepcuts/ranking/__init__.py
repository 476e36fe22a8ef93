"""Ranking: features per (user, candidate), rankers, filters and the shape of a list."""
