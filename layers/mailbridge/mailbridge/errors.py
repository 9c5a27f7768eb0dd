"""Typed domain errors.

Services raise these; `mailbridge.api.errors` maps them to HTTP once and queue consumers decide
retry vs quarantine by type. Nobody matches on message text, so `code` is the machine-readable
reason clients and tests rely on.
"""

from __future__ import annotations

from typing import Any


class MailbridgeError(Exception):
    """Base of every error a service raises on purpose."""

    code = "error"
    retryable = False

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details


class Invalid(MailbridgeError):
    """The input breaks a rule the schema cannot express."""

    code = "invalid"


class Unprocessable(MailbridgeError):
    """Well-formed input that cannot be acted on as it stands (a snooze time already past)."""

    code = "unprocessable"


class Unauthorized(MailbridgeError):
    """No usable identity (missing or unusable claims)."""

    code = "unauthorized"


class Forbidden(MailbridgeError):
    """The caller's role does not allow this."""

    code = "forbidden"


class NotFound(MailbridgeError):
    """Missing, or owned by another tenant: both look the same to the caller."""

    code = "not_found"


class Conflict(MailbridgeError):
    """A conditional write lost: duplicate create, stale version, cursor moving backwards."""

    code = "conflict"


class PreconditionFailed(MailbridgeError):
    """An `If-Match` precondition named a version that is no longer current (RFC 9110 13.1.1)."""

    code = "precondition_failed"


class PreconditionRequired(MailbridgeError):
    """The route only writes conditionally and the request carried no `If-Match` (RFC 6585 3)."""

    code = "precondition_required"


class FeatureDisabled(NotFound):
    """The tenant switched this capability off; the routes behave as if absent."""

    code = "feature_disabled"


class RateLimited(MailbridgeError):
    """The caller sent more than its limit allows; `retry_after` seconds until it may again."""

    code = "rate_limited"

    def __init__(
        self, message: str, *, retry_after: float | None = None, code: str | None = None, details: Any = None
    ) -> None:
        super().__init__(message, code=code, details=details)
        self.retry_after = retry_after


class PayloadTooLarge(MailbridgeError):
    code = "payload_too_large"


class UnsupportedMediaType(MailbridgeError):
    """The request body is of a media type the route does not take."""

    code = "unsupported_media_type"


class ProviderError(MailbridgeError):
    """A mail or CRM provider failed; transient unless a subclass says otherwise."""

    code = "provider_error"
    retryable = True


class ProviderAuthError(ProviderError):
    """Credentials rejected: retrying will not help until the user reconnects."""

    code = "provider_auth"
    retryable = False


class ProviderUnreachable(ProviderError):
    """Host unknown, connection refused, TLS failure or timeout."""

    code = "provider_unreachable"


class ProviderRateLimited(ProviderError):
    code = "provider_rate_limited"

    def __init__(self, message: str, *, retry_after: float | None = None, details: Any = None) -> None:
        super().__init__(message, details=details)
        self.retry_after = retry_after


class EventPublishError(MailbridgeError):
    """Some bus entries were still rejected after the retries."""

    code = "event_publish_failed"
    retryable = True


class QueueSendError(MailbridgeError):
    """Work could not be queued; the caller's request or record should be retried."""

    code = "queue_send_failed"
    retryable = True
