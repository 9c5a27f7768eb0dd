"""In-app notifications, preferences and digests (issue 15 point 4)."""
