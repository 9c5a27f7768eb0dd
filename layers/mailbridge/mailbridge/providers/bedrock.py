"""Amazon Bedrock runtime adapter: one Converse call whose structured answer comes through a tool.

`BedrockConverse(client).converse_json(model_id, system, prompt, answer_model, max_tokens=...)`
sends `POST /model/{modelId}/converse` through boto3's `bedrock-runtime` client
(`converse(modelId, system=[{"text"}], messages=[{"role": "user", "content": [{"text"}]}],
inferenceConfig={"maxTokens", "temperature": 0}, toolConfig=...)`) with one tool whose input
schema is `answer_model`'s JSON schema, and the model made to call it:
`toolConfig={"tools": [{"toolSpec": {"name", "description", "inputSchema": {"json": <schema>}}}],
"toolChoice": {"tool": {"name"}}}` (Bedrock API reference: Converse, ToolConfiguration, ToolSpecification,
SpecificToolChoice; the user guide's "Call a tool with the Converse API"). The answer is the
`input` of the `toolUse` content block naming that tool (`stopReason: tool_use`), validated by
`answer_model` (pydantic); it comes back as a `ConverseAnswer` with `stopReason` and the `usage`
token counts (`inputTokens`, `outputTokens`). `toolChoice.tool` is documented for Anthropic
Claude 3 and Amazon Nova models; other models answer ValidationException (`invalid_request`).

Failures raise `BedrockFailure` with `reason` (machine-readable, never the message text):
- `throttled`: ThrottlingException (429), after botocore's standard retry mode has retried it with
  exponential backoff and jitter (the Bedrock troubleshooting guide's advice for 429 and 5xx;
  `RETRY_ATTEMPTS` attempts in all);
- `timeout`: ModelTimeoutException (408), or no answer within the client's read timeout;
- `access_denied`: AccessDeniedException (403: model access not granted, missing permission);
- `invalid_request`: ValidationException (400, e.g. an unknown model id) or ResourceNotFound;
- `unavailable`: 5xx after the retries (InternalServerException, ServiceUnavailableException), or
  the endpoint cannot be reached;
- `invalid_answer`: no `toolUse` block for the tool (a text-only answer), an `input` that fails
  `answer_model`, or an answer cut off (`stopReason: max_tokens`). The tokens were used: `usage`
  is set.

Sources: Bedrock API reference, Converse (request, response, errors); Amazon Bedrock user guide,
"Troubleshooting Amazon Bedrock API error codes"; botocore's retry modes (standard).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ValidationError

if TYPE_CHECKING:
    from botocore.config import Config

RETRY_ATTEMPTS = 3
"""Attempts per call (the first and two retries of throttling and 5xx)."""
CONNECT_TIMEOUT = 2.0
READ_TIMEOUT = 6.0
"""Seconds per attempt. A read timeout is retried like a 5xx, so the worst case (3 attempts and
their backoff) stays under 25 s: inside the api function's 29 s, with time for the local answer."""

FailureReason = Literal[
    "throttled", "timeout", "access_denied", "invalid_request", "unavailable", "invalid_answer"
]
_ERROR_REASONS: dict[str, FailureReason] = {
    "ThrottlingException": "throttled",
    "ModelTimeoutException": "timeout",
    "AccessDeniedException": "access_denied",
    "ValidationException": "invalid_request",
    "ResourceNotFoundException": "invalid_request",
    "ModelNotReadyException": "unavailable",
    "ModelErrorException": "unavailable",
    "InternalServerException": "unavailable",
    "ServiceUnavailableException": "unavailable",
}

Answer = TypeVar("Answer", bound=BaseModel)


@dataclass(frozen=True)
class Usage:
    """Converse `usage`: tokens read and written by the model for one call."""

    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True)
class ConverseAnswer(Generic[Answer]):
    answer: Answer
    usage: Usage
    stop_reason: str


class BedrockFailure(Exception):
    """A Converse call that gave no usable answer; `usage` when the model ran (invalid answer)."""

    def __init__(self, reason: FailureReason, usage: Usage | None = None) -> None:
        super().__init__(reason)
        self.reason: FailureReason = reason
        self.usage = usage or Usage()


def client_config() -> Config:
    from botocore.config import Config

    return Config(
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
        retries={"mode": "standard", "total_max_attempts": RETRY_ATTEMPTS},
    )


def make_client(region: str, endpoint_url: str | None) -> Any:
    """A `bedrock-runtime` client for `region`; `endpoint_url` None means AWS's own endpoint
    (`https://bedrock-runtime.{region}.amazonaws.com`, or `AWS_ENDPOINT_URL_BEDROCK_RUNTIME`)."""
    import boto3

    return boto3.session.Session().client(
        "bedrock-runtime", region_name=region, endpoint_url=endpoint_url or None, config=client_config()
    )


def _usage(response: dict[str, Any]) -> Usage:
    usage = response.get("usage") or {}
    return Usage(int(usage.get("inputTokens") or 0), int(usage.get("outputTokens") or 0))


def tool_config(answer_model: type[BaseModel]) -> dict[str, Any]:
    """Converse `toolConfig` with one tool named after `answer_model` (`[a-zA-Z0-9_-]{1,64}`,
    SpecificToolChoice) whose `inputSchema.json` is the model's JSON schema, and `toolChoice`
    naming it: the model must answer by calling it."""
    name = answer_model.__name__[:64]
    description = (answer_model.__doc__ or name).strip().splitlines()[0]
    return {
        "tools": [
            {
                "toolSpec": {
                    "name": name,
                    "description": description,
                    "inputSchema": {"json": answer_model.model_json_schema()},
                }
            }
        ],
        "toolChoice": {"tool": {"name": name}},
    }


def _tool_input(response: dict[str, Any], name: str) -> Any:
    """The `input` of the answer's `toolUse` block for tool `name` (ContentBlock.toolUse:
    `{"toolUseId", "name", "input"}`); LookupError when the model answered without it."""
    content = ((response.get("output") or {}).get("message") or {}).get("content") or []
    for block in content:
        use = block.get("toolUse") if isinstance(block, dict) else None
        if isinstance(use, dict) and use.get("name") == name and "input" in use:
            return use["input"]
    raise LookupError("no toolUse block for the tool")


class BedrockConverse:
    """The adapter over one boto3 `bedrock-runtime` client (see the module docstring)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def converse_json(
        self, model_id: str, system: str, prompt: str, answer_model: type[Answer], *, max_tokens: int
    ) -> ConverseAnswer[Answer]:
        from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, ReadTimeoutError

        config = tool_config(answer_model)
        try:
            response = self.client.converse(
                modelId=model_id,
                system=[{"text": system}],
                messages=[{"role": "user", "content": [{"text": prompt}]}],
                inferenceConfig={"maxTokens": max_tokens, "temperature": 0},
                toolConfig=config,
            )
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            raise BedrockFailure(_ERROR_REASONS.get(code, "unavailable")) from None
        except (ReadTimeoutError, ConnectTimeoutError):
            raise BedrockFailure("timeout") from None
        except BotoCoreError:
            raise BedrockFailure("unavailable") from None
        usage = _usage(response)
        stop_reason = str(response.get("stopReason") or "")
        if stop_reason == "max_tokens":
            raise BedrockFailure("invalid_answer", usage)
        try:
            tool_input = _tool_input(response, config["toolChoice"]["tool"]["name"])
            answer = answer_model.model_validate(tool_input)
        except (LookupError, ValidationError):
            raise BedrockFailure("invalid_answer", usage) from None
        return ConverseAnswer(answer=answer, usage=usage, stop_reason=stop_reason)
