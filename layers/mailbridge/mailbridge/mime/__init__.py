"""MIME normalizer: raw RFC 5322 bytes -> `ParsedMessage` + attachment bytes, or one `MimeError`."""

from mailbridge.mime.errors import MimeError
from mailbridge.mime.parse import NormalizeResult, normalize
from mailbridge.mime.subject import base_subject

__all__ = ["MimeError", "NormalizeResult", "base_subject", "normalize"]
