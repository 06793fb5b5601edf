"""Operate: what operators ask of the outbox (stats, dead letters, requeue, purge, health)."""
