"""Read a SAM template the way CloudFormation would, just enough for the local runner.

`load_template([...paths], parameters=...)` parses the YAML (short-form tags become long form),
merges several files (`Resources` union, later files win), applies `Globals.Function`, evaluates
`Conditions` and resolves intrinsics against parameters, pseudo parameters and physical names.
The typed model below (functions, routes, queue mappings, rules, schedules) is what the runner
needs; anything this module cannot resolve raises `TemplateError` naming it.
"""

from __future__ import annotations

import base64
import copy
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

try:  # libyaml's parser: a sixth of the pure-Python one's CPU for template.yaml (each runner start)
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
PARTITION = "aws"
URL_SUFFIX = "amazonaws.com"
DEFAULT_STACK = "mailbridge-local"

NO_VALUE = object()  # AWS::NoValue: the key or list item disappears


class TemplateError(ValueError):
    """The template uses something the local runner cannot resolve."""


# ------------------------------------------------------------------------------------------ YAML


class _CfnLoader(_SafeLoader):
    """SafeLoader that turns `!Ref x` into `{"Ref": "x"}` and `!Sub s` into `{"Fn::Sub": s}`."""


def _construct_tag(loader: _CfnLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    else:  # pragma: no cover - yaml has only these three node kinds
        raise TemplateError(f"unsupported YAML node for !{tag_suffix}")
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "Condition":
        return {"Condition": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{tag_suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def load_yaml(path: Path) -> dict[str, Any]:
    """Parse one CloudFormation/SAM YAML file into long-form intrinsics."""
    doc = yaml.load(path.read_text(encoding="utf-8"), Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
    if not isinstance(doc, dict):
        raise TemplateError(f"{path}: not a template (top level is not a mapping)")
    doc["__dir__"] = str(path.parent.resolve())
    return doc


# ----------------------------------------------------------------------------------- typed model


@dataclass(frozen=True)
class Route:
    method: str  # upper case or ANY
    path: str  # "/features/{id}", "/files/{proxy+}", "$default"
    function: str  # logical id
    auth: str | None  # authorizer name, or None for Authorizer: NONE

    @property
    def route_key(self) -> str:
        return "$default" if self.path == "$default" else f"{self.method} {self.path}"


@dataclass(frozen=True)
class WebSocketRoute:
    """An `AWS::ApiGatewayV2::Route` of a WEBSOCKET API whose integration invokes a function."""

    api: str  # the Api's logical id
    route_key: str  # "$connect", "$disconnect", "$default" or a custom key
    function: str  # logical id


@dataclass(frozen=True)
class Authorizer:
    name: str
    issuer: str
    audience: tuple[str, ...]
    identity_source: str = "$request.header.Authorization"


@dataclass(frozen=True)
class QueueMapping:
    function: str
    queue_arn: str
    batch_size: int = 10
    report_batch_item_failures: bool = False
    enabled: bool = True


@dataclass(frozen=True)
class StreamMapping:
    """A SAM `DynamoDB` function event: the table's stream pumped into the function."""

    function: str
    table: str  # logical id of the table whose StreamArn the event names
    batch_size: int = 100
    report_batch_item_failures: bool = False
    starting_position: str = "TRIM_HORIZON"


@dataclass(frozen=True)
class Target:
    arn: str
    input: str | None = None
    message_group_id: str | None = None


@dataclass(frozen=True)
class ScheduledRule:
    name: str  # logical id (or function.event)
    expression: str  # rate(...) | cron(...)
    targets: tuple[Target, ...]
    enabled: bool = True
    timezone: str = "UTC"


@dataclass(frozen=True)
class BusRuleToFunction:
    """A SAM `EventBridgeRule` function event: the runner puts a hidden queue in between."""

    name: str  # "{Function}{Event}"
    function: str
    bus_name: str
    pattern: dict[str, Any]
    input: str | None = None


@dataclass(frozen=True)
class Function:
    logical_id: str
    name: str
    code_dir: Path
    handler: str
    timeout: int
    memory_size: int
    environment: dict[str, str]
    layers: tuple[str, ...]

    @property
    def arn(self) -> str:
        return f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT_ID}:function:{self.name}"


# ------------------------------------------------------------------------------------- template

_REF_FORMATS: dict[str, str] = {
    # type -> how `Ref` renders, from the physical name {n}
    "AWS::DynamoDB::Table": "{n}",
    "AWS::S3::Bucket": "{n}",
    "AWS::Events::EventBus": "{n}",
    "AWS::Events::Rule": "{n}",  # CloudFormation gives "bus|name" on custom buses; name is enough here
    "AWS::SQS::Queue": "https://sqs.{region}.amazonaws.com/{account}/{n}",
    "AWS::Serverless::Function": "{n}",
    "AWS::Lambda::Function": "{n}",
    "AWS::KMS::Alias": "{n}",
    "AWS::Scheduler::Schedule": "{n}",
    "AWS::Scheduler::ScheduleGroup": "{n}",
    "AWS::Serverless::LayerVersion": "arn:aws:lambda:{region}:{account}:layer:{n}:1",
    "AWS::Serverless::HttpApi": "{n}",
    "AWS::ApiGatewayV2::Api": "{n}",
    "AWS::ApiGatewayV2::Integration": "{n}",
    "AWS::Cognito::UserPool": "{region}_local{n}",
    "AWS::Cognito::UserPoolClient": "local{n}",
    "AWS::SNS::Topic": "arn:aws:sns:{region}:{account}:{n}",
    "AWS::IAM::Role": "{n}",
    "AWS::SecretsManager::Secret": "{n}",  # the ARN once created (local.resources), else the name
}

_ARN_FORMATS: dict[str, str] = {
    "AWS::DynamoDB::Table": "arn:aws:dynamodb:{region}:{account}:table/{n}",
    "AWS::S3::Bucket": "arn:aws:s3:::{n}",
    "AWS::Events::EventBus": "arn:aws:events:{region}:{account}:event-bus/{n}",
    "AWS::Events::Rule": "arn:aws:events:{region}:{account}:rule/{n}",
    "AWS::SQS::Queue": "arn:aws:sqs:{region}:{account}:{n}",
    "AWS::Serverless::Function": "arn:aws:lambda:{region}:{account}:function:{n}",
    "AWS::Lambda::Function": "arn:aws:lambda:{region}:{account}:function:{n}",
    "AWS::KMS::Key": "arn:aws:kms:{region}:{account}:key/{n}",
    "AWS::Scheduler::Schedule": "arn:aws:scheduler:{region}:{account}:schedule/default/{n}",
    "AWS::Scheduler::ScheduleGroup": "arn:aws:scheduler:{region}:{account}:schedule-group/{n}",
    "AWS::IAM::Role": "arn:aws:iam::{account}:role/{n}",
    "AWS::SNS::Topic": "arn:aws:sns:{region}:{account}:{n}",
}

_NAME_PROPERTIES: dict[str, str] = {
    "AWS::DynamoDB::Table": "TableName",
    "AWS::S3::Bucket": "BucketName",
    "AWS::Events::EventBus": "Name",
    "AWS::Events::Rule": "Name",
    "AWS::SQS::Queue": "QueueName",
    "AWS::Serverless::Function": "FunctionName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::KMS::Alias": "AliasName",
    "AWS::Scheduler::Schedule": "Name",
    "AWS::Scheduler::ScheduleGroup": "Name",
    "AWS::Serverless::LayerVersion": "LayerName",
    "AWS::IAM::Role": "RoleName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::SecretsManager::Secret": "Name",
}

_EXTRA_ATTRIBUTES: dict[tuple[str, str], str] = {
    ("AWS::SQS::Queue", "QueueName"): "{n}",
    ("AWS::SQS::Queue", "QueueUrl"): "https://sqs.{region}.amazonaws.com/{account}/{n}",
    ("AWS::S3::Bucket", "DomainName"): "{n}.s3.amazonaws.com",
    ("AWS::S3::Bucket", "RegionalDomainName"): "{n}.s3.{region}.amazonaws.com",
    ("AWS::KMS::Key", "KeyId"): "{n}",
    ("AWS::Events::EventBus", "Name"): "{n}",
    ("AWS::Serverless::HttpApi", "ApiEndpoint"): "https://{n}.execute-api.{region}.amazonaws.com",
}


class Template:
    """A merged, condition-evaluated template whose values resolve on demand via `resolve()`."""

    def __init__(
        self,
        docs: list[dict[str, Any]],
        parameters: Mapping[str, str] | None = None,
        stack_name: str = DEFAULT_STACK,
    ) -> None:
        if not docs:
            raise TemplateError("no template given")
        self.stack_name = stack_name
        self.parameters_spec: dict[str, dict[str, Any]] = {}
        self.conditions_spec: dict[str, Any] = {}
        self.mappings: dict[str, Any] = {}
        self.globals: dict[str, Any] = {}
        self.all_resources: dict[str, dict[str, Any]] = {}
        self.base_dirs: dict[str, Path] = {}
        for doc in docs:
            base = Path(doc.get("__dir__", "."))
            self.parameters_spec.update(doc.get("Parameters") or {})
            self.conditions_spec.update(doc.get("Conditions") or {})
            self.mappings.update(doc.get("Mappings") or {})
            fn_globals = (doc.get("Globals") or {}).get("Function")
            if fn_globals and not self.globals:
                self.globals = fn_globals
            for logical_id, resource in (doc.get("Resources") or {}).items():
                self.all_resources[logical_id] = resource
                self.base_dirs[logical_id] = base
        self.parameters = self._parameter_values(parameters or {})
        self._conditions: dict[str, bool] = {}
        self.resources = {
            logical_id: self._with_globals(resource)
            for logical_id, resource in self.all_resources.items()
            if "Condition" not in resource or self.condition(resource["Condition"])
        }
        # Physical ids known only after creation (KMS key ids); filled by local.resources.
        self.physical_ids: dict[str, str] = {}

    # ------------------------------------------------------------------ parameters, conditions

    def _parameter_values(self, overrides: Mapping[str, str]) -> dict[str, str]:
        unknown = set(overrides) - set(self.parameters_spec)
        if unknown:
            raise TemplateError(f"unknown template parameter(s): {', '.join(sorted(unknown))}")
        values: dict[str, str] = {}
        for name, spec in self.parameters_spec.items():
            if name in overrides:
                value = str(overrides[name])
            elif "Default" in spec:
                value = str(spec["Default"])
            else:
                raise TemplateError(f"parameter {name} has no Default and no value was given")
            allowed = spec.get("AllowedValues")
            if allowed is not None and value not in [str(a) for a in allowed]:
                raise TemplateError(f"parameter {name}={value!r} is not one of {allowed}")
            values[name] = value
        return values

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            if name not in self.conditions_spec:
                raise TemplateError(f"unknown condition {name!r}")
            self._conditions[name] = self._evaluate_condition(self.conditions_spec[name])
        return self._conditions[name]

    def _evaluate_condition(self, expr: Any) -> bool:
        if isinstance(expr, dict) and len(expr) == 1:
            ((key, arg),) = expr.items()
            if key == "Condition":
                return self.condition(arg)
            if key == "Fn::Equals":
                left, right = (self.resolve(v) for v in arg)
                return str(left) == str(right)
            if key == "Fn::Not":
                return not self._evaluate_condition(arg[0])
            if key == "Fn::And":
                return all(self._evaluate_condition(a) for a in arg)
            if key == "Fn::Or":
                return any(self._evaluate_condition(a) for a in arg)
        raise TemplateError(f"unsupported condition expression: {expr!r}")

    # ------------------------------------------------------------------------------ globals

    def _with_globals(self, resource: dict[str, Any]) -> dict[str, Any]:
        if resource.get("Type") != "AWS::Serverless::Function" or not self.globals:
            return resource
        merged = copy.deepcopy(resource)
        props = merged.setdefault("Properties", {})
        for key, value in self.globals.items():
            if key == "Environment":
                global_vars = (value or {}).get("Variables") or {}
                own = (props.get("Environment") or {}).get("Variables") or {}
                props["Environment"] = {"Variables": {**global_vars, **own}}
            elif key == "Layers":
                props["Layers"] = list(value) + list(props.get("Layers") or [])
            elif isinstance(value, dict) and isinstance(props.get(key), dict):
                props[key] = {**value, **props[key]}
            else:
                props.setdefault(key, copy.deepcopy(value))
        return merged

    # ------------------------------------------------------------------------- physical names

    def resource_type(self, logical_id: str) -> str:
        if logical_id not in self.resources:
            if logical_id in self.all_resources:
                raise TemplateError(f"resource {logical_id} is disabled by its Condition")
            raise TemplateError(f"unknown resource {logical_id!r}")
        return str(self.resources[logical_id]["Type"])

    def properties(self, logical_id: str) -> dict[str, Any]:
        """The resource's Properties with every intrinsic resolved."""
        self.resource_type(logical_id)
        resolved = self.resolve(self.resources[logical_id].get("Properties") or {})
        assert isinstance(resolved, dict)
        return resolved

    def physical_name(self, logical_id: str) -> str:
        if logical_id in self.physical_ids:
            return self.physical_ids[logical_id]
        rtype = self.resource_type(logical_id)
        if rtype == "AWS::KMS::Key":
            raise TemplateError(f"KMS key {logical_id} has no id until it is created (create_resources)")
        props = self.resources[logical_id].get("Properties") or {}
        name_prop = _NAME_PROPERTIES.get(rtype)
        if name_prop and name_prop in props:
            return str(self.resolve(props[name_prop]))
        if rtype == "AWS::Serverless::LayerVersion":
            return f"{self.stack_name}-{logical_id}"
        name = f"{self.stack_name}-{logical_id}"
        if rtype == "AWS::S3::Bucket":
            name = name.lower()
        if rtype == "AWS::SQS::Queue" and str(self.resolve(props.get("FifoQueue", False))).lower() == "true":
            name += ".fifo"
        return name

    def ref(self, name: str) -> str:
        pseudo = {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Partition": PARTITION,
            "AWS::StackName": self.stack_name,
            "AWS::URLSuffix": URL_SUFFIX,
            "AWS::StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT_ID}:stack/{self.stack_name}/local",
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        rtype = self.resource_type(name)
        if rtype == "AWS::KMS::Key":
            return self.physical_name(name)
        if rtype not in _REF_FORMATS:
            raise TemplateError(f"Ref to {name} of type {rtype} is not supported by the local runner")
        return self._fill(_REF_FORMATS[rtype], self.physical_name(name))

    def get_att(self, logical_id: str, attribute: str) -> str:
        rtype = self.resource_type(logical_id)
        if attribute == "Arn" and rtype in _ARN_FORMATS:
            return self._fill(_ARN_FORMATS[rtype], self.physical_name(logical_id))
        if (rtype, attribute) in _EXTRA_ATTRIBUTES:
            return self._fill(_EXTRA_ATTRIBUTES[rtype, attribute], self.physical_name(logical_id))
        raise TemplateError(
            f"Fn::GetAtt {logical_id}.{attribute} ({rtype}) is not supported by the local runner"
        )

    @staticmethod
    def _fill(fmt: str, name: str) -> str:
        return fmt.format(n=name, region=REGION, account=ACCOUNT_ID)

    # -------------------------------------------------------------------------- intrinsics

    def resolve(self, value: Any) -> Any:
        """Resolve every intrinsic in `value` (returns a new structure)."""
        if isinstance(value, list):
            items = [self.resolve(v) for v in value]
            return [v for v in items if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref" or key.startswith("Fn::"):
                return self._intrinsic(key, arg)
        out = {}
        for k, v in value.items():
            resolved = self.resolve(v)
            if resolved is not NO_VALUE:
                out[k] = resolved
        return out

    def _intrinsic(self, key: str, arg: Any) -> Any:
        if key == "Ref":
            return NO_VALUE if arg == "AWS::NoValue" else self.ref(str(arg))
        if key == "Fn::GetAtt":
            parts = arg if isinstance(arg, list) else str(arg).split(".", 1)
            logical_id, attribute = (str(self.resolve(p)) for p in parts)
            return self.get_att(logical_id, attribute)
        if key == "Fn::Sub":
            return self._sub(arg)
        if key == "Fn::If":
            name, when_true, when_false = arg
            return self.resolve(when_true if self.condition(name) else when_false)
        if key == "Fn::Join":
            sep, items = arg
            return str(sep).join(str(i) for i in self.resolve(items))
        if key == "Fn::Select":
            index, items = self.resolve(arg)
            return items[int(index)]
        if key == "Fn::Split":
            sep, text = self.resolve(arg)
            return str(text).split(str(sep))
        if key == "Fn::FindInMap":
            map_name, top, second = (str(self.resolve(a)) for a in arg[:3])
            try:
                return self.resolve(self.mappings[map_name][top][second])
            except KeyError:
                raise TemplateError(f"Fn::FindInMap {map_name}/{top}/{second} not found") from None
        if key == "Fn::Base64":
            return base64.b64encode(str(self.resolve(arg)).encode()).decode()
        if key == "Fn::GetAZs":
            return [f"{REGION}{z}" for z in "abc"]
        if key in ("Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or"):
            return self._evaluate_condition({key: arg})
        raise TemplateError(f"intrinsic {key} is not supported by the local runner")

    def _sub(self, arg: Any) -> str:
        if isinstance(arg, list):
            text, variables = arg[0], {k: self.resolve(v) for k, v in arg[1].items()}
        else:
            text, variables = arg, {}

        def replace(match: re.Match[str]) -> str:
            expr = match.group(1)
            if expr.startswith("!"):
                return "${" + expr[1:] + "}"
            if expr in variables:
                return str(variables[expr])
            if "." in expr and not expr.startswith("AWS::"):
                logical_id, attribute = expr.split(".", 1)
                return self.get_att(logical_id, attribute)
            return self.ref(expr)

        return re.sub(r"\$\{([^}]+)\}", replace, str(text))

    # ---------------------------------------------------------------------- runner's model

    def of_type(self, *types: str) -> list[str]:
        return [lid for lid, r in self.resources.items() if r.get("Type") in types]

    def functions(self) -> dict[str, Function]:
        out = {}
        for lid in self.of_type("AWS::Serverless::Function"):
            props = self.resources[lid].get("Properties") or {}
            env = self.resolve((props.get("Environment") or {}).get("Variables") or {})
            code_uri = str(self.resolve(props.get("CodeUri", ".")))
            out[lid] = Function(
                logical_id=lid,
                name=self.physical_name(lid),
                code_dir=(self.base_dirs[lid] / code_uri).resolve(),
                handler=str(self.resolve(props["Handler"])),
                timeout=int(self.resolve(props.get("Timeout", 3))),
                memory_size=int(self.resolve(props.get("MemorySize", 128))),
                environment={k: _env_string(v) for k, v in env.items()},
                layers=tuple(str(x) for x in self.resolve(props.get("Layers") or [])),
            )
        return out

    def _function_events(self) -> Iterable[tuple[str, str, str, dict[str, Any]]]:
        for lid in self.of_type("AWS::Serverless::Function"):
            events = (self.resources[lid].get("Properties") or {}).get("Events") or {}
            for event_name, event in events.items():
                yield lid, event_name, str(event.get("Type")), event.get("Properties") or {}

    def authorizers(self) -> dict[str, Authorizer]:
        out = {}
        for api in self.of_type("AWS::Serverless::HttpApi"):
            auth = (self.resources[api].get("Properties") or {}).get("Auth") or {}
            for name, spec in (auth.get("Authorizers") or {}).items():
                jwt = self.resolve(spec.get("JwtConfiguration") or {})
                audience = jwt.get("audience") or []
                out[name] = Authorizer(
                    name=name,
                    issuer=str(jwt.get("issuer", "")),
                    audience=tuple(str(a) for a in audience),
                    identity_source=str(spec.get("IdentitySource", "$request.header.Authorization")),
                )
        return out

    def default_authorizer(self, api_id: str | None) -> str | None:
        apis = self.of_type("AWS::Serverless::HttpApi")
        api = api_id if api_id in apis else (apis[0] if apis else None)
        if api is None:
            return None
        auth = (self.resources[api].get("Properties") or {}).get("Auth") or {}
        value = auth.get("DefaultAuthorizer")
        return str(value) if value else None

    def routes(self) -> list[Route]:
        out = []
        for lid, _event, etype, props in self._function_events():
            if etype != "HttpApi":
                continue
            api_ref = props.get("ApiId")
            api_id = api_ref.get("Ref") if isinstance(api_ref, dict) else None
            authorizer = self.default_authorizer(api_id)
            route_auth = props.get("Auth") or {}
            if "Authorizer" in route_auth:
                authorizer = None if route_auth["Authorizer"] == "NONE" else str(route_auth["Authorizer"])
            path = str(self.resolve(props.get("Path", "$default")))
            method = str(self.resolve(props.get("Method", "ANY"))).upper()
            if "Path" not in props:
                path, method = "$default", "ANY"
            out.append(Route(method=method, path=path, function=lid, auth=authorizer))
        return out

    def websocket_routes(self) -> list[WebSocketRoute]:
        """Routes of the WebSocket APIs: Route.Target `integrations/${Integration}` -> the
        Integration's `IntegrationUri` `...functions/${Function.Arn}/invocations` -> the function."""
        websocket_apis = {
            lid
            for lid in self.of_type("AWS::ApiGatewayV2::Api")
            if str(self.resolve(self.resources[lid].get("Properties", {}).get("ProtocolType"))) == "WEBSOCKET"
        }
        out = []
        for lid in self.of_type("AWS::ApiGatewayV2::Route"):
            props = self.resources[lid].get("Properties") or {}
            api = _referenced(props.get("ApiId"))
            integration = _referenced(props.get("Target"))
            if api not in websocket_apis or integration not in self.resources:
                continue
            uri = (self.resources[integration].get("Properties") or {}).get("IntegrationUri")
            function = _referenced(uri)
            if (
                function is None
                or self.resources.get(function, {}).get("Type") != "AWS::Serverless::Function"
            ):
                raise TemplateError(f"{lid}: its integration does not invoke a function of this template")
            out.append(
                WebSocketRoute(api=api, route_key=str(self.resolve(props["RouteKey"])), function=function)
            )
        return out

    def queue_mappings(self) -> list[QueueMapping]:
        out = []
        for lid, _event, etype, props in self._function_events():
            if etype != "SQS":
                continue
            resolved = self.resolve(props)
            out.append(
                QueueMapping(
                    function=lid,
                    queue_arn=str(resolved["Queue"]),
                    batch_size=int(resolved.get("BatchSize", 10)),
                    report_batch_item_failures="ReportBatchItemFailures"
                    in (resolved.get("FunctionResponseTypes") or []),
                    enabled=str(resolved.get("Enabled", True)).lower() == "true",
                )
            )
        return out

    def stream_mappings(self) -> list[StreamMapping]:
        """SAM `DynamoDB` events whose `Stream` is `!GetAtt <Table>.StreamArn` of this template."""
        out = []
        for lid, _event, etype, props in self._function_events():
            if etype != "DynamoDB":
                continue
            table = _referenced(props.get("Stream"))
            if table is None or self.resource_type(table) != "AWS::DynamoDB::Table":
                raise TemplateError(f"{lid}: its DynamoDB event names no stream of this template")
            out.append(
                StreamMapping(
                    function=lid,
                    table=table,
                    batch_size=int(self.resolve(props.get("BatchSize", 100))),
                    report_batch_item_failures="ReportBatchItemFailures"
                    in (self.resolve(props.get("FunctionResponseTypes")) or []),
                    starting_position=str(self.resolve(props.get("StartingPosition", "TRIM_HORIZON"))),
                )
            )
        return out

    def scheduled_rules(self) -> list[ScheduledRule]:
        """`AWS::Events::Rule` with a ScheduleExpression, plus SAM Schedule/ScheduleV2 events."""
        out = []
        for lid in self.of_type("AWS::Events::Rule"):
            props = self.properties(lid)
            if "ScheduleExpression" not in props:
                continue
            targets = tuple(
                Target(
                    arn=str(t["Arn"]),
                    input=t.get("Input"),
                    message_group_id=(t.get("SqsParameters") or {}).get("MessageGroupId"),
                )
                for t in props.get("Targets") or []
            )
            out.append(
                ScheduledRule(
                    name=lid,
                    expression=str(props["ScheduleExpression"]),
                    targets=targets,
                    enabled=props.get("State", "ENABLED") == "ENABLED",
                )
            )
        functions = self.functions()
        for lid, event_name, etype, raw in self._function_events():
            if etype not in ("Schedule", "ScheduleV2"):
                continue
            props = self.resolve(raw)
            expression = props.get("Schedule") or props.get("ScheduleExpression")
            enabled = str(props.get("Enabled", True)).lower() == "true" and props.get("State", "ENABLED") in (
                "ENABLED",
                None,
            )
            out.append(
                ScheduledRule(
                    name=f"{lid}{event_name}",
                    expression=str(expression),
                    targets=(Target(arn=functions[lid].arn, input=props.get("Input")),),
                    enabled=enabled,
                    timezone=str(props.get("ScheduleExpressionTimezone", "UTC")),
                )
            )
        return out

    def bus_rules_to_functions(self) -> list[BusRuleToFunction]:
        """SAM EventBridgeRule events, and pattern rules whose target is one of our functions."""
        out = []
        function_names = {fn.arn: lid for lid, fn in self.functions().items()}
        for lid in self.of_type("AWS::Events::Rule"):
            props = self.properties(lid)
            if "EventPattern" not in props:
                continue
            for target in props.get("Targets") or []:
                function = function_names.get(str(target.get("Arn")))
                if function:
                    out.append(
                        BusRuleToFunction(
                            name=f"{lid}{target.get('Id', '')}",
                            function=function,
                            bus_name=str(props.get("EventBusName", "default")).rsplit("/", 1)[-1],
                            pattern=props["EventPattern"],
                            input=target.get("Input"),
                        )
                    )
        for lid, event_name, etype, raw in self._function_events():
            if etype not in ("EventBridgeRule", "CloudWatchEvent"):
                continue
            props = self.resolve(raw)
            out.append(
                BusRuleToFunction(
                    name=f"{lid}{event_name}",
                    function=lid,
                    bus_name=str(props.get("EventBusName", "default")),
                    pattern=props["Pattern"],
                    input=props.get("Input"),
                )
            )
        return out


def _referenced(value: Any) -> str | None:
    """The logical id a `Ref`, `GetAtt` or the first `${Name}` / `${Name.Attr}` of a `Sub` names."""
    if isinstance(value, dict) and len(value) == 1:
        ((key, arg),) = value.items()
        if key == "Ref":
            return str(arg)
        if key == "Fn::GetAtt":
            return str(arg[0] if isinstance(arg, list) else str(arg).split(".", 1)[0])
        if key == "Fn::Sub":
            text = arg[0] if isinstance(arg, list) else arg
            for name in re.findall(r"\$\{([^}!]+)\}", str(text)):
                if not name.startswith("AWS::"):
                    return str(name.split(".", 1)[0])
    return None


def _env_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def load_template(
    paths: Iterable[Path],
    parameters: Mapping[str, str] | None = None,
    stack_name: str = DEFAULT_STACK,
) -> Template:
    """Load and merge template files (later files add or replace resources)."""
    return Template([load_yaml(Path(p)) for p in paths], parameters=parameters, stack_name=stack_name)
