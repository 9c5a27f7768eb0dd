"""Calendar: events (one-off and recurring), ICS import and export, invitations and RSVP (iTIP).

Modules: `models` (what the API takes and gives), `times` (RFC 5545 times and IANA zones),
`ics` (iCalendar text <-> events, with `icalendar`), `expand` (occurrences in a range, with
`recurring-ical-events`), `service` (events, import, export, feeds), `itip` (invitations,
replies and cancellations, RFC 5546; `on_email` for incoming mail), `tokens` (signed RSVP and
feed tokens), `limits` (per-tenant rate limits), `timeline` (events on CRM timelines),
`sources` (the seam for provider calendars), `wiring` (settings and dependencies).

`icalendar` and `recurring-ical-events` are imported inside the functions that use them, so
the api function's cold start does not pay for them unless a calendar route runs.
"""
