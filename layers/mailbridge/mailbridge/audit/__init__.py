"""The audit log (issue 19 point 4): who did what, when, from where, with which outcome.

`models` (the entry), `agents` (user-agent family), `service` (`record`, `list_entries`),
`archive` (the stream consumer's JSON Lines batches), `wiring` (cached dependencies).
"""
