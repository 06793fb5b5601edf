"""chat-outbox domain."""
