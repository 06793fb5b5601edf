"""Errors adapters raise in the application's words."""


class StoreUnavailable(Exception):
    """The database could not be reached or dropped the connection; retrying may help."""


class BusUnavailable(Exception):
    """The message bus could not be reached; retrying may help."""
