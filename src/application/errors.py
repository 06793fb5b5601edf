"""Errors adapters raise in the application's words."""


class StoreUnavailable(Exception):
    """The database could not be reached or dropped the connection; retrying may help."""
