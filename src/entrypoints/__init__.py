"""chat-outbox entrypoints."""
