"""Kafka adapters (aiokafka) and the local Tansu broker used by tests and the demo."""
