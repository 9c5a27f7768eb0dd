"""Peer for the cold-start benchmark: the smallest Powertools HTTP API handler (one route)."""

from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

app = APIGatewayHttpResolver(enable_validation=True)


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return app.resolve(event, context)
