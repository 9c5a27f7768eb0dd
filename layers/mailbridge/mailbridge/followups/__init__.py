"""Follow-up flags: a due time, priority and note on an email, a reminder when due (issue 15 point 2)."""
