"""Example applications that use chat-outbox through its public API."""
