"""BedrockDouble: the Converse operation of the Bedrock runtime on a loopback port.

Shapes from the Bedrock API reference (Converse, ContentBlock, TokenUsage, ConverseMetrics,
StopReason) and the "Troubleshooting Amazon Bedrock API error codes" page:

* Request: `POST /model/{modelId}/converse`, JSON `{"messages": [{"role": "user"|"assistant",
  "content": [{"text": ...}]}], "system": [{"text": ...}], "inferenceConfig": {"maxTokens",
  "temperature", "topP", "stopSequences"}}`; `messages` must start with a user turn and alternate.
  With `"toolConfig": {"tools": [{"toolSpec": {"name", "description", "inputSchema": {"json"}}}],
  "toolChoice": {"auto": {}} | {"any": {}} | {"tool": {"name"}}}` (ToolConfiguration,
  ToolChoice, SpecificToolChoice): `toolChoice.tool` must name one of the tools and is
  "only supported by Anthropic Claude 3 and Amazon Nova models" (ValidationException otherwise).
* Answer 200: `{"output": {"message": {"role": "assistant", "content": [{"text": ...}]}},
  "stopReason": "end_turn" | "max_tokens", "usage": {"inputTokens", "outputTokens",
  "totalTokens"}, "metrics": {"latencyMs"}}`; to a request with tools, the content is
  `[{"toolUse": {"toolUseId", "name", "input": {...}}}]` and `stopReason` is `tool_use`.
* Errors (restJson1: the type in the `x-amzn-ErrorType` header, `{"message": ...}` body):
  ValidationException 400, AccessDeniedException 403, ResourceNotFoundException 404,
  ModelTimeoutException 408, ThrottlingException 429, InternalServerException 500,
  ServiceUnavailableException 503.

Not Bedrock, a choice of the double: the "model" is deterministic. Tokens are counted as one per
four characters (rounded up). Without a scripted answer, a prompt that names a task answers by
keywords: `TASK: categorize` -> `{"category", "confidence"}` by the first keyword family found in
the email part of the prompt; `TASK: lead` -> `{"title", "company", "phone", "website"}` from
labelled `Title:` / `Company:` / `Phone:` / `Web:` lines; anything else -> `{}`. To a request
with tools, that object is the `input` of a `toolUse` of the tool `toolChoice.tool` names (else
the first). Tests script answers (`script`: a dict is a tool input, answered as a `toolUse`
block; a string is a text-only answer, any text) and faults (`fail`), and read `requests`.
The signature is not verified (any `AWS4-HMAC-SHA256` Authorization header passes; none is 403).
"""

from __future__ import annotations

import json
import math
import re
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from local.double_server import Call, ControlError, HttpServer, Response, Route, Router, control_body, route

MODELS = frozenset(
    {
        "anthropic.claude-3-haiku-20240307-v1:0",
        "anthropic.claude-3-5-haiku-20241022-v1:0",
        "amazon.nova-micro-v1:0",
        "amazon.nova-lite-v1:0",
        "mistral.mistral-small-2402-v1:0",
    }
)
"""Model ids the double serves (and their cross-region `us.`/`eu.`/`apac.` inference profiles)."""

ERRORS: dict[str, tuple[int, str]] = {
    "ValidationException": (400, "Input validation failed. Check your request parameters and retry."),
    "AccessDeniedException": (403, "You don't have access to the model with the specified model ID."),
    "ResourceNotFoundException": (404, "The specified resource ARN was not found."),
    "ModelTimeoutException": (408, "The request took too long to process."),
    "ThrottlingException": (429, "Too many requests, please wait before trying again."),
    "InternalServerException": (500, "The server encountered an internal error."),
    "ServiceUnavailableException": (503, "The service isn't currently available."),
}  # fmt: skip

_CATEGORY_WORDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("finance", re.compile(r"\b(?:invoice|payment|refund|receipt|billing)\b", re.I)),
    ("support", re.compile(r"\b(?:error|broken|not working|bug|help)\b", re.I)),
    ("sales", re.compile(r"\b(?:pricing|quote|demo|licen[cs]e|purchase|seats)\b", re.I)),
    ("personal", re.compile(r"\b(?:dinner|birthday|weekend|family)\b", re.I)),
)
TOOL_CHOICE_MODELS = ("anthropic.claude-3", "amazon.nova")
"""Model id prefixes that accept `toolChoice: {"tool": ...}` (ToolChoice, Bedrock API reference)."""
_LEAD_LINES = {"title": "title", "company": "company", "phone": "phone", "web": "website"}


@dataclass(frozen=True)
class Fault:
    """An error the double answers instead of the model (`error`: a key of `ERRORS`)."""

    error: str
    message: str | None = None


@dataclass
class Request:
    """One Converse request as received (for tests: what reached the "network")."""

    model_id: str
    body: dict[str, Any]

    @property
    def text(self) -> str:
        """Every text block of the system prompt and messages, joined."""
        parts = [str(b.get("text", "")) for b in self.body.get("system") or () if isinstance(b, dict)]
        for message in self.body.get("messages") or ():
            parts += [str(b.get("text", "")) for b in message.get("content") or () if isinstance(b, dict)]
        return "\n".join(parts)


@dataclass
class _State:
    requests: list[Request] = field(default_factory=list)
    faults: deque[Fault] = field(default_factory=deque)
    answers: deque[str | dict[str, Any]] = field(default_factory=deque)
    denied: set[str] = field(default_factory=set)


class ApiError(ControlError):
    """A Bedrock error answer in restJson1 form."""

    def __init__(self, error: str, message: str | None = None) -> None:
        status, default = ERRORS[error]
        super().__init__(status, message or default)
        self.error = error

    def response(self) -> Response:
        return Response.json(
            self.status,
            {"message": self.message},
            {"x-amzn-ErrorType": f"{self.error}:http://internal.amazon.com/coral/com.amazon.bedrock/"},
        )


def tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def _known(model_id: str) -> bool:
    base = re.sub(r"^(?:us|eu|apac)\.", "", model_id)
    return base in MODELS


def default_answer(prompt: str) -> str:
    """The double's deterministic "model" (see the module docstring)."""
    if "TASK: categorize" in prompt:
        email = prompt.partition("EMAIL:")[2]
        for category, words in _CATEGORY_WORDS:
            if words.search(email):
                return json.dumps({"category": category, "confidence": 0.9})
        return json.dumps({"category": "other", "confidence": 0.55})
    if "TASK: lead" in prompt:
        found: dict[str, str] = {}
        for line in prompt.partition("EMAIL:")[2].splitlines():
            label, sep, value = line.partition(":")
            key = _LEAD_LINES.get(label.strip().lower())
            if sep and key and value.strip() and key not in found:
                found[key] = value.strip()
        return json.dumps(found)
    return "{}"


class BedrockDouble:
    """The Converse operation, its usage and its documented errors (see the module docstring)."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.lock = threading.RLock()
        self.state = _State()
        router = Router(self._routes(), self._not_found, self._not_found)
        self._server = HttpServer(router, host, port, name="bedrock-double")

    # ---------------------------------------------------------------- control (Python and HTTP)
    @property
    def base_url(self) -> str:
        return self._server.base_url

    @property
    def requests(self) -> list[Request]:
        with self.lock:
            return list(self.state.requests)

    def fail(self, error: str, times: int = 1, message: str | None = None) -> None:
        """Answer the next `times` Converse calls with `error` (a key of `ERRORS`)."""
        if error not in ERRORS:
            raise ValueError(f"unknown error {error!r}")
        with self.lock:
            self.state.faults.extend(Fault(error, message) for _ in range(times))

    def script(self, *answers: str | dict[str, Any]) -> None:
        """The next calls' answers, in order: a dict is a tool input (a `toolUse` block when the
        request has tools), a string a text-only answer (any text: invalid JSON too)."""
        with self.lock:
            self.state.answers.extend(answers)

    def deny(self, model_id: str) -> None:
        """Calls to `model_id` answer AccessDeniedException (model access not granted)."""
        with self.lock:
            self.state.denied.add(model_id)

    def reset(self) -> None:
        with self.lock:
            self.state = _State()

    def start(self) -> BedrockDouble:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> BedrockDouble:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ---------------------------------------------------------------- HTTP
    def _routes(self) -> list[Route]:
        return [
            route("POST", "/model/{modelId}/converse", self._converse),
            route("GET", "/__double__", self._control_state),
            route("POST", "/__double__/faults", self._control_faults),
            route("POST", "/__double__/answers", self._control_answers),
            route("POST", "/__double__/reset", self._control_reset),
        ]

    @staticmethod
    def _not_found(_call: Call) -> Response:
        return ApiError("ResourceNotFoundException", "Unknown operation").response()

    def _converse(self, call: Call) -> Response:
        if not call.headers.get("authorization", "").startswith("AWS4-HMAC-SHA256 "):
            raise ApiError("AccessDeniedException", "Missing Authentication Token")
        model_id = call.params["modelId"]
        try:
            body = call.json()
        except ValueError:
            raise ApiError("ValidationException", "The request body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise ApiError("ValidationException")
        with self.lock:
            self.state.requests.append(Request(model_id, body))
            fault = self.state.faults.popleft() if self.state.faults else None
            scripted = self.state.answers.popleft() if self.state.answers else None
            denied = model_id in self.state.denied
        if fault is not None:
            raise ApiError(fault.error, fault.message)
        if not _known(model_id):
            raise ApiError("ValidationException", "The provided model identifier is invalid.")
        if denied:
            raise ApiError("AccessDeniedException")
        request = Request(model_id, body)
        max_tokens = self._validate(body)
        tool = self._tool(model_id, body)
        if scripted is None:
            scripted = default_answer(request.text)
            if tool is not None:
                scripted = json.loads(scripted)
        content: list[dict[str, Any]]
        if isinstance(scripted, dict):
            answer = json.dumps(scripted)
            stop_reason = "tool_use" if tool is not None else "end_turn"
            content = [
                {
                    "toolUse": {
                        "toolUseId": f"tooluse_{uuid.uuid4().hex[:22]}",
                        "name": tool,
                        "input": scripted,
                    }
                }
            ]
            if tool is None:
                content = [{"text": answer}]
        else:
            answer, stop_reason = scripted, "end_turn"
            content = [{"text": answer}]
        if tokens(answer) > max_tokens:
            answer, stop_reason = answer[: max_tokens * 4], "max_tokens"
            content = [{"text": answer}]
        used_in, used_out = tokens(request.text), tokens(answer)
        return Response.json(
            200,
            {
                "output": {"message": {"role": "assistant", "content": content}},
                "stopReason": stop_reason,
                "usage": {
                    "inputTokens": used_in,
                    "outputTokens": used_out,
                    "totalTokens": used_in + used_out,
                },
                "metrics": {"latencyMs": 1},
            },
            {"x-amzn-RequestId": str(uuid.uuid4())},
        )

    @staticmethod
    def _validate(body: dict[str, Any]) -> int:
        """The request's rules (Converse API reference); its `maxTokens` (default 4096)."""
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ApiError("ValidationException", "A conversation must start with a user message.")
        for index, message in enumerate(messages):
            expected = "user" if index % 2 == 0 else "assistant"
            if not isinstance(message, dict) or message.get("role") != expected:
                raise ApiError(
                    "ValidationException",
                    "A conversation must alternate between user and assistant roles.",
                )
            content = message.get("content")
            if not isinstance(content, list) or not content:
                raise ApiError("ValidationException", "The content field in the Message object is empty.")
        config = body.get("inferenceConfig") or {}
        max_tokens = config.get("maxTokens", 4096)
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise ApiError("ValidationException", "maxTokens must be at least 1.")
        return max_tokens

    @staticmethod
    def _tool(model_id: str, body: dict[str, Any]) -> str | None:
        """The tool the answer calls (None: the request has no `toolConfig`): the one
        `toolChoice.tool` names, else the first (ToolConfiguration, ToolChoice)."""
        config = body.get("toolConfig")
        if config is None:
            return None
        tools = config.get("tools") if isinstance(config, dict) else None
        if not isinstance(tools, list) or not tools:
            raise ApiError(
                "ValidationException", "The toolConfig field must be defined with at least one tool."
            )
        names: list[str] = []
        for tool in tools:
            spec = tool.get("toolSpec") if isinstance(tool, dict) else None
            name = spec.get("name") if isinstance(spec, dict) else None
            schema = (spec.get("inputSchema") or {}).get("json") if isinstance(spec, dict) else None
            if not isinstance(name, str) or not re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", name):
                raise ApiError("ValidationException", "A tool name must match [a-zA-Z0-9_-]{1,64}.")
            if not isinstance(schema, dict):
                raise ApiError("ValidationException", "A tool's inputSchema.json must be a JSON object.")
            names.append(name)
        choice = config.get("toolChoice") or {"auto": {}}
        if (
            not isinstance(choice, dict)
            or len(choice) != 1
            or next(iter(choice)) not in ("auto", "any", "tool")
        ):
            raise ApiError("ValidationException", "toolChoice must be one of auto, any or tool.")
        if "tool" not in choice:
            return names[0]
        if not re.sub(r"^(?:us|eu|apac)\.", "", model_id).startswith(TOOL_CHOICE_MODELS):
            raise ApiError(
                "ValidationException",
                "This model doesn't support the toolConfig.toolChoice.tool field. "
                "Remove toolConfig.toolChoice.tool and try again.",
            )
        named = (choice.get("tool") or {}).get("name")
        if named not in names:
            raise ApiError("ValidationException", "toolChoice.tool.name must name one of the tools.")
        return str(named)

    def _control_state(self, _call: Call) -> Response:
        with self.lock:
            return Response.json(
                200,
                {
                    "url": self.base_url,
                    "requests": [{"model_id": r.model_id} for r in self.state.requests],
                    "pending_faults": [f.error for f in self.state.faults],
                },
            )

    def _control_faults(self, call: Call) -> Response:
        body = control_body(call)
        try:
            self.fail(str(body.get("error")), int(body.get("times", 1)), body.get("message"))
        except (TypeError, ValueError) as error:
            raise ControlError(400, str(error)) from None
        return Response.empty()

    def _control_answers(self, call: Call) -> Response:
        answers = control_body(call).get("answers")
        if not isinstance(answers, list) or not all(isinstance(a, str | dict) for a in answers):
            raise ControlError(400, "answers must be a list of strings (text) or objects (tool inputs)")
        self.script(*answers)
        return Response.empty()

    def _control_reset(self, _call: Call) -> Response:
        self.reset()
        return Response.empty()
