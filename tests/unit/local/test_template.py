from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from local.template import Template, TemplateError, load_template, load_yaml

ROOT = Path(__file__).resolve().parents[3]


def _template(tmp_path: Path, text: str, **parameters: str) -> Template:
    path = tmp_path / "template.yaml"
    path.write_text(textwrap.dedent(text))
    return load_template([path], parameters=parameters)


SMALL = """
    Parameters:
      Stage: {Type: String, Default: dev, AllowedValues: [dev, prod]}
      Issuer: {Type: String, Default: ""}
    Conditions:
      IsProd: !Equals [!Ref Stage, prod]
      NoIssuer: !Equals [!Ref Issuer, ""]
      ProdWithIssuer: !And [!Condition IsProd, !Not [!Condition NoIssuer]]
    Mappings:
      Sizes: {dev: {mem: 256}, prod: {mem: 1024}}
    Globals:
      Function:
        Timeout: 10
        MemorySize: !FindInMap [Sizes, !Ref Stage, mem]
        Layers: [!Ref Layer]
        Environment:
          Variables: {STAGE: !Ref Stage, QUEUE: !Ref Jobs, SHARED: global}
    Resources:
      Layer:
        Type: AWS::Serverless::LayerVersion
        Properties: {LayerName: !Sub "lib-${Stage}", ContentUri: lib/}
      Jobs:
        Type: AWS::SQS::Queue
        Properties: {FifoQueue: true}
      Bucket:
        Type: AWS::S3::Bucket
      ProdOnly:
        Type: AWS::SQS::Queue
        Condition: IsProd
      Fn:
        Type: AWS::Serverless::Function
        Properties:
          CodeUri: functions/fn/
          Handler: app.handler
          Timeout: 30
          Environment:
            Variables:
              SHARED: own
              BUCKET_ARN: !GetAtt Bucket.Arn
              OBJECTS: !Sub "${Bucket.Arn}/*"
              REGION: !Sub "${AWS::Region}:${AWS::AccountId}:${AWS::StackName}"
              JOINED: !Join ["-", [a, !Select [1, !Split [",", "x,y,z"]]]]
              MAYBE: !If [IsProd, prod-value, !Ref AWS::NoValue]
              ENCODED: !Base64 hi
              LITERAL: !Sub "${!NotReplaced}"
          Events:
            Get:
              Type: HttpApi
              Properties: {Path: "/items/{id}", Method: get}
            Open:
              Type: HttpApi
              Properties: {Path: /health, Method: GET, Auth: {Authorizer: NONE}}
            Queue:
              Type: SQS
              Properties:
                Queue: !GetAtt Jobs.Arn
                BatchSize: 25
                FunctionResponseTypes: [ReportBatchItemFailures]
            Nightly:
              Type: ScheduleV2
              Properties: {ScheduleExpression: "cron(0 3 * * ? *)", Input: '{"a": 1}'}
      Api:
        Type: AWS::Serverless::HttpApi
        Properties:
          Auth:
            DefaultAuthorizer: Jwt
            Authorizers:
              Jwt:
                JwtConfiguration:
                  issuer: !If [NoIssuer, "https://default", !Ref Issuer]
                  audience: [aud1]
"""


def test_globals_are_merged_and_intrinsics_resolved(tmp_path: Path) -> None:
    # Given
    template = _template(tmp_path, SMALL)
    # When
    fn = template.functions()["Fn"]
    # Then
    assert fn.timeout == 30
    assert fn.memory_size == 256
    assert fn.code_dir == (tmp_path / "functions" / "fn").resolve()
    assert fn.layers == ("arn:aws:lambda:us-east-1:123456789012:layer:lib-dev:1",)
    assert fn.environment == {
        "STAGE": "dev",
        "QUEUE": "https://sqs.us-east-1.amazonaws.com/123456789012/mailbridge-local-Jobs.fifo",
        "SHARED": "own",
        "BUCKET_ARN": "arn:aws:s3:::mailbridge-local-bucket",
        "OBJECTS": "arn:aws:s3:::mailbridge-local-bucket/*",
        "REGION": "us-east-1:123456789012:mailbridge-local",
        "JOINED": "a-y",
        "ENCODED": "aGk=",
        "LITERAL": "${NotReplaced}",
    }


def test_conditions_and_parameter_overrides(tmp_path: Path) -> None:
    # Given / When
    dev = _template(tmp_path, SMALL)
    prod = _template(tmp_path, SMALL, Stage="prod", Issuer="https://issuer")
    # Then
    assert "ProdOnly" not in dev.resources
    assert "ProdOnly" in prod.resources
    assert prod.condition("ProdWithIssuer") is True
    assert prod.functions()["Fn"].environment["MAYBE"] == "prod-value"
    assert prod.functions()["Fn"].memory_size == 1024
    assert dev.authorizers()["Jwt"].issuer == "https://default"
    assert prod.authorizers()["Jwt"].issuer == "https://issuer"
    with pytest.raises(TemplateError, match="not one of"):
        _template(tmp_path, SMALL, Stage="qa")
    with pytest.raises(TemplateError, match="unknown template parameter"):
        _template(tmp_path, SMALL, Nope="x")


def test_routes_mappings_and_schedules(tmp_path: Path) -> None:
    # Given
    template = _template(tmp_path, SMALL)
    # Then
    routes = {r.route_key: r.auth for r in template.routes()}
    assert routes == {"GET /items/{id}": "Jwt", "GET /health": None}
    (mapping,) = template.queue_mappings()
    assert mapping.batch_size == 25
    assert mapping.report_batch_item_failures
    assert mapping.queue_arn == "arn:aws:sqs:us-east-1:123456789012:mailbridge-local-Jobs.fifo"
    (schedule,) = template.scheduled_rules()
    assert schedule.expression == "cron(0 3 * * ? *)"
    assert schedule.targets[0].arn.endswith(":function:mailbridge-local-Fn")
    assert schedule.targets[0].input == '{"a": 1}'


def test_unsupported_things_fail_loudly(tmp_path: Path) -> None:
    template = _template(tmp_path, SMALL)
    with pytest.raises(TemplateError, match=r"Bucket\.WebsiteURL"):
        template.resolve({"Fn::GetAtt": ["Bucket", "WebsiteURL"]})
    with pytest.raises(TemplateError, match="Fn::Cidr"):
        template.resolve({"Fn::Cidr": ["10.0.0.0/16", 2, 8]})
    with pytest.raises(TemplateError, match="unknown resource"):
        template.resolve({"Ref": "Missing"})
    with pytest.raises(TemplateError, match="disabled by its Condition"):
        template.resolve({"Ref": "ProdOnly"})


def test_overlay_adds_resources(tmp_path: Path) -> None:
    # Given the real template plus an overlay
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(
        "Resources:\n  Extra:\n    Type: AWS::SQS::Queue\n    Properties: {QueueName: !Sub 'x-${Stage}'}\n"
    )
    # When
    template = load_template([ROOT / "template.yaml", overlay])
    # Then
    assert template.physical_name("Extra") == "x-dev"
    assert "AccountsTable" in template.resources


def test_real_template_loads(tmp_path: Path) -> None:
    # Given / When
    doc = load_yaml(ROOT / "template.yaml")
    template = load_template(
        [ROOT / "template.yaml"], parameters={"JwtIssuer": "http://i", "JwtAudience": "a"}
    )
    # Then
    assert doc["Resources"]["EventBus"]["Properties"]["Name"] == {"Fn::Sub": "mailbridge-${Stage}"}
    assert "UserPool" not in template.resources  # UseCognito is false with an external issuer
    assert template.physical_name("EventBus") == "mailbridge-dev"
    assert any(r.route_key == "GET /health" and r.auth is None for r in template.routes())
    assert template.authorizers()["JwtAuthorizer"].audience == ("a",)
