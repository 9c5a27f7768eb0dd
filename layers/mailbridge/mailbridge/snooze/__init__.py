"""Snooze: hide an email or a thread until a time, then bring it back unread (issue 15 point 1)."""
