"""Consume: write delivered records into chat history and mark their rows consumed."""
