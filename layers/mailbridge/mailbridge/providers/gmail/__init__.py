"""The Gmail API v1 adapter: an httpx client with typed results and errors, a per-account quota
budget, and bounded concurrency for fetching messages (client.py); watch renewal (watch.py)."""
