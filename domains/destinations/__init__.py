"""Destination lookup and autocomplete over real airports."""
