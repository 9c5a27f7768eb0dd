"""Mailbox sync: fetch what changed on the provider, normalize it and store it exactly once."""
