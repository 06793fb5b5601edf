"""Relay: claim due outbox rows, publish them, write each one's outcome."""
