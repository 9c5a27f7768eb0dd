"""Nudges: sent mail with no reply, received mail from CRM contacts with no answer (issue 15 point 3)."""
