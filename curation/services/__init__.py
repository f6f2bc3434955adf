"""Workflows that touch several rows, enqueue tasks or run code: ``<entity>_<verb>(*, ...)``."""
