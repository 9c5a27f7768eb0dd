"""One Logger, Tracer and Metrics per function; the service name comes from POWERTOOLS_SERVICE_NAME.

Handlers apply them in one fixed order (see functions/api/app.py). Logs are structured JSON and
must never carry message bodies, credentials or full addresses: use `redact_address`.
"""

# ruff: noqa: ARG002  (the no-op tracing classes implement Powertools interfaces and ignore their inputs)

from __future__ import annotations

import contextlib
import numbers
import warnings
from collections.abc import Generator, Sequence
from typing import Any

from aws_lambda_powertools.logging import Logger
from aws_lambda_powertools.metrics import Metrics
from aws_lambda_powertools.tracing import Tracer
from aws_lambda_powertools.tracing.base import BaseProvider, BaseSegment


class _NoopSegment(BaseSegment):
    def close(self, end_time: int | None = None) -> None:
        return None

    def add_subsegment(self, subsegment: Any) -> None:
        return None

    def remove_subsegment(self, subsegment: Any) -> None:
        return None

    def put_annotation(self, key: str, value: str | numbers.Number | bool) -> None:
        return None

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        return None

    def add_exception(self, exception: BaseException, stack: list[Any], remote: bool = False) -> None:
        return None


class _NoopProvider(BaseProvider):
    """Stands in for the X-Ray recorder when tracing is off.

    Powertools builds the X-Ray provider even for a disabled Tracer, and importing the SDK (with
    botocore) costs ~250 ms of cold start. When Powertools' own rules say tracing is off
    (outside Lambda, under `sam local`, POWERTOOLS_TRACE_DISABLED) nothing would be sent, so
    the SDK is not imported at all.
    """

    @contextlib.contextmanager
    def in_subsegment(self, name: Any = None, **kwargs: Any) -> Generator[BaseSegment, None, None]:
        yield _NoopSegment()

    @contextlib.asynccontextmanager
    async def in_subsegment_async(self, name: Any = None, **kwargs: Any) -> Any:
        yield _NoopSegment()

    def put_annotation(self, key: str, value: str | numbers.Number | bool) -> None:
        return None

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        return None

    def patch(self, modules: Sequence[str]) -> None:
        return None

    def patch_all(self) -> None:
        return None


def _make_tracer() -> Tracer:
    if Tracer._is_tracer_disabled():
        return Tracer(disabled=True, provider=_NoopProvider(), auto_patch=False)
    return Tracer()


logger = Logger()
tracer = _make_tracer()
metrics = Metrics()
# Most invocations emit nothing but the cold-start metric; Powertools warns on every one of them.
warnings.filterwarnings("ignore", message="No application metrics to publish")


def redact_address(address: str) -> str:
    """`alice@example.com` -> `a***@example.com`: enough to debug routing, not to identify."""
    local, sep, domain = address.rpartition("@")
    if not sep:
        return "***"
    return f"{local[:1]}***@{domain}"
