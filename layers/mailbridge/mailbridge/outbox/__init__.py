"""Sending mail: compose, queue or schedule, send over SMTP, keep a copy in Sent, announce it."""
