"""The tier runs what a prod deployment runs: the template's prod parameters reach every function."""

from __future__ import annotations

from mailbridge.config import get_settings
from tests.fixtures.aws import CA_VARIABLES, Stack, deploy_parameters


def test_the_prod_deployment_names_no_private_mail_hosts_and_no_stage_but_prod() -> None:
    # Given samconfig.toml's prod environment / Then it is the prod stage and leaves the mail-host
    # setting to the template's default (false), as `sam deploy --config-env prod` would
    parameters = deploy_parameters("prod")
    assert parameters["Stage"] == "prod"
    assert "AllowPrivateMailHosts" not in parameters


def test_every_function_runs_with_the_deployed_protections(stack: Stack) -> None:
    # Given the template deployed with the prod parameters
    functions = stack.template.functions()
    assert functions
    for name, function in functions.items():
        env = function.environment
        # Then no function allows private mail hosts or plain text, or trusts an extra CA
        assert env.get("ALLOW_PRIVATE_MAIL_HOSTS") == "false", name
        assert env.get("STAGE") == "prod", name
        assert not set(env) & set(CA_VARIABLES), name
    # And the settings the code reads say the same
    settings = get_settings()
    assert (settings.stage, settings.allow_private_mail_hosts) == ("prod", False)
