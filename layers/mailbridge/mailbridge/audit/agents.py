"""The family of a User-Agent (RFC 9110 section 10.1.5), for the audit log: enough to tell a
browser from a script, never the full string (it can identify a person's device).

A short ordered token table rather than a user-agent parser library: the audit needs the family
only, and the layer has no UA parser (ua-parser would be the library for versions and devices).
Order matters: Edge and Opera also send `Chrome/`, Chrome also sends `Safari/`.
"""

from __future__ import annotations

_FAMILIES: tuple[tuple[str, str], ...] = (
    ("edg/", "edge"),
    ("opr/", "opera"),
    ("firefox/", "firefox"),
    ("chrome/", "chrome"),
    ("crios/", "chrome"),
    ("safari/", "safari"),
    ("curl/", "curl"),
    ("wget/", "wget"),
    ("python-requests/", "python-requests"),
    ("python-httpx/", "python-httpx"),
    ("python-urllib/", "python-urllib"),
    ("aiohttp/", "aiohttp"),
    ("postmanruntime/", "postman"),
    ("insomnia/", "insomnia"),
    ("okhttp/", "okhttp"),
    ("go-http-client/", "go-http-client"),
    ("node-fetch/", "node-fetch"),
    ("axios/", "axios"),
    ("aws-sdk-", "aws-sdk"),
    ("boto3/", "aws-sdk"),
    ("java/", "java"),
    ("mozilla/", "mozilla-other"),
)


def agent_family(user_agent: str | None) -> str:
    """`none` (no header), one of the families above, or `other`."""
    agent = (user_agent or "").strip().lower()
    if not agent:
        return "none"
    return next((family for token, family in _FAMILIES if token in agent), "other")
