"""Shared domain, events and data access used by every function."""
