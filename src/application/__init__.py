"""chat-outbox use cases. They depend only on the ports in `application.ports`."""
