"""Realtime function: the WebSocket API's `$connect`, `$disconnect` and `$default` routes.

`$connect` answers 200 after recording the connection under the token's tenant and user, 401 for
a missing or invalid token, 403 for claims without a tenant or role (mailbridge.realtime.service);
API Gateway refuses the handshake with that status. Anything else (the issuer's keys unreachable)
raises: the handshake fails with 500, as for any integration error. `$disconnect` forgets the connection.
`$default` (anything a client sends) is accepted and ignored: the socket only carries updates out.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.data_classes import APIGatewayWebSocketEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from mailbridge.errors import Forbidden, Unauthorized
from mailbridge.observability import logger, metrics, tracer
from mailbridge.realtime.service import connect, disconnect
from mailbridge.realtime.tokens import bearer_token
from mailbridge.realtime.wiring import connect_deps


def _refused(status: int, error: Unauthorized | Forbidden) -> dict[str, Any]:
    logger.info("websocket connect refused", extra={"code": error.code})
    return {"statusCode": status, "body": error.code}


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], _context: LambdaContext) -> dict[str, Any]:
    ws = APIGatewayWebSocketEvent(event)
    connection_id = ws.request_context.connection_id
    route = ws.request_context.route_key
    if route == "$connect":
        token = bearer_token(ws.headers, ws.query_string_parameters)
        try:
            connect(connection_id, token, connect_deps())
        except Unauthorized as error:
            return _refused(401, error)
        except Forbidden as error:
            return _refused(403, error)
        return {"statusCode": 200}
    if route == "$disconnect":
        disconnect(connection_id, connect_deps())
    return {"statusCode": 200}
