"""Curation: the problem bank, trajectories, review and the CALM loop (the Django app)."""
