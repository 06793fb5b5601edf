"""`make bench`: chat-outbox against a hand-written asyncpg + aiokafka baseline, same run."""
