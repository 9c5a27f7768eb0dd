"""Drafts: stored, versioned messages being written, kept in step with the mailbox's drafts."""
