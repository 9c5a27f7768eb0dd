"""boto3's condition builders, imported on first use.

`from boto3.dynamodb.conditions import Key` at module level imports all of boto3 (~120 ms), which
every API cold start would pay even for routes that never query. Same call syntax, deferred import.
"""

from __future__ import annotations

from typing import Any


def Key(name: str) -> Any:  # noqa: N802 - mirrors boto3's name so call sites read the same
    from boto3.dynamodb.conditions import Key as _Key

    return _Key(name)


def Attr(name: str) -> Any:  # noqa: N802
    from boto3.dynamodb.conditions import Attr as _Attr

    return _Attr(name)
