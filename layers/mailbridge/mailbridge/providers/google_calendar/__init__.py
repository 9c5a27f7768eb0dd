"""Google Calendar API v3 adapter (issue 16 point 6)."""
