"""Campaigns (issue 17 point 4): sending a template to an audience, and who must not get it.

- `service`: campaign sending: one outbound email per audience contact, exactly once, throttled
  per sending account and resumable.
- `suppression`: the tenant's suppression list (unsubscribes, hard bounces, complaints, manual
  entries), RFC 8058 one-click unsubscribe tokens and headers, and what campaign sending asks of
  it (`suppressed`, `unsubscribe_headers`).
- `wiring`: their dependencies, built once per cold start.
"""
