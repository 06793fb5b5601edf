"""chat-outbox adapters."""
