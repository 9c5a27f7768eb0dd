"""OAuth function: Powertools wiring only; the flow lives in mailbridge.oauth."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from mailbridge.api.auditing import AuditingResolver
from mailbridge.api.errors import register_error_handlers
from mailbridge.config import get_settings
from mailbridge.oauth.routes import router
from mailbridge.observability import logger, metrics, tracer

get_settings()  # fail the cold start, not the first request, on a bad environment
app = AuditingResolver(enable_validation=True)  # the callback's audit entry (mailbridge.oauth.routes)
register_error_handlers(app)
app.include_router(router)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
