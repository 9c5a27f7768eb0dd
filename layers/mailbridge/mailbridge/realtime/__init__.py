"""Real-time updates over the WebSocket API: connect/disconnect bookkeeping and the notifier's fan-out."""
