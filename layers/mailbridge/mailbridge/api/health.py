"""Liveness: no auth and no downstream calls, so probes and load balancers cannot cost a query."""

from __future__ import annotations

from typing import Literal

from aws_lambda_powertools.event_handler.api_gateway import Router

from mailbridge import __version__
from mailbridge.api.context import public
from mailbridge.config import get_settings
from mailbridge.models.base import Model

router = Router()


class Health(Model):
    status: Literal["ok"] = "ok"
    stage: str
    version: str


@router.get(
    "/health",
    summary="Liveness check",
    tags=["meta"],
    security=[],
    middlewares=[public("a liveness probe: no tenant data and no downstream calls")],
)
def health() -> Health:
    return Health(stage=get_settings().stage, version=__version__)
