"""MIME normalizer: raw RFC 5322 bytes -> `ParsedMessage` + attachment bytes, or one `MimeError`.

The names below load their modules on first use, so importing a light submodule (the automated-
mail markers, identifiers) does not pull the parser and its libraries into a cold start.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mailbridge.mime.errors import MimeError
    from mailbridge.mime.parse import NormalizeResult, normalize
    from mailbridge.mime.subject import base_subject

__all__ = ["MimeError", "NormalizeResult", "base_subject", "normalize"]

_HOMES = {
    "MimeError": "mailbridge.mime.errors",
    "NormalizeResult": "mailbridge.mime.parse",
    "normalize": "mailbridge.mime.parse",
    "base_subject": "mailbridge.mime.subject",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(home), name)
