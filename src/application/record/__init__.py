"""Record: write a message into the outbox inside the caller's transaction."""
