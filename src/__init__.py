"""chat-outbox: a transactional outbox for AI-agent chat messages."""
