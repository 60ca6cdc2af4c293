"""Placement policies: filters and scorers composed into profiles, evaluated level by level."""
