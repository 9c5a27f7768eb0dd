"""Open and click tracking of sent mail (issue 17 points 2, 3 and 5).

- `rewrite`: at send time, a 1x1 pixel in the HTML part and every http(s) link replaced by
  `/t/c/{token}`; the text part is left as it is.
- `tokens`: the signed tokens in those URLs (the calendar's `Signer`, its own purposes).
- `classify`: a hit's evidence -> `human`, `proxy` or `scanner`, with the reasons.
- `service`: deciding whether a message is tracked, recording hits, engagement per email.
- `wiring`: settings and dependencies, built once per cold start.
"""
