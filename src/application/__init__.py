"""chat-outbox application."""
