"""A FastAPI + SQLAlchemy 2 async app that records chat messages with chat-outbox in its own
transactions: `uvicorn --factory examples.fastapi_app.app:app_from_env` (see README.md)."""
