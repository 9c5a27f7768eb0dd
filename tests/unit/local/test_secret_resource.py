"""The local runner creates the template's Secrets Manager secrets in moto, as CloudFormation
would: a generated value, and `Ref` giving the ARN the functions receive."""

from __future__ import annotations

from pathlib import Path

import boto3
from moto import mock_aws

from local.resources import create_resources
from local.template import load_template

ROOT = Path(__file__).resolve().parents[3]


@mock_aws
def test_the_cursor_secret_is_created_with_a_generated_value_and_its_arn_reaches_the_functions() -> None:
    # Given the template
    template = load_template([ROOT / "template.yaml"])
    session = boto3.session.Session(region_name="us-east-1")
    # When its resources are created
    deployed = create_resources(session, template)
    # Then the secret holds 64 random letters and digits (GenerateSecretString), and every
    # function that pages gets its ARN
    arn = deployed.secrets["CursorSecret"]
    value = session.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"]
    assert len(value) == 64
    assert value.isalnum()
    functions = template.functions()
    for function_id in ("ApiFunction", "SyncFunction", "MatchFunction"):
        assert functions[function_id].environment["CURSOR_SECRET_ARN"] == arn
