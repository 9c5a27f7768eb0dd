"""The typed errors of the automations engine: all `Invalid` (HTTP 400) with a machine-readable code.

Messages are fixed texts that never quote the rule, the template or the event data.
"""

from __future__ import annotations

from mailbridge.errors import Invalid


class LogicError(Invalid):
    """A JSON-Logic rule that cannot be accepted or evaluated.

    Codes: `invalid_logic` (not a rule: an object with several keys, a value that is not JSON,
    a wrong number of arguments), `unknown_operator` (an operator outside the jsonlogic.com set),
    `logic_too_deep` (nesting beyond `MAX_DEPTH`), `logic_too_costly` (more nodes than
    `MAX_NODES`, or the evaluation spent its operation budget), `invalid_data` (the data is not
    JSON, or nests too deeply), `logic_evaluation_failed` (the engine refused a value at run
    time, e.g. arithmetic on a word gives NaN).
    """

    code = "invalid_logic"


class ConditionError(Invalid):
    """A simple condition list that cannot be compiled (`unknown_condition_operator`,
    `invalid_condition`)."""

    code = "invalid_condition"


class TemplateError(Invalid):
    """A templated parameter that cannot be accepted or rendered.

    Codes: `invalid_template` (syntax, or a construct outside the allowed subset),
    `unknown_helper`, `undefined_variable`, `template_too_large` (source or output beyond the
    limits), `template_failed` (a helper or filter refused its argument).
    """

    code = "invalid_template"


class ActionError(Invalid):
    """An action that cannot be built from its rendered parameters (`invalid_action`), or one
    that is not available yet (`action_not_available`)."""

    code = "invalid_action"


class CronError(Invalid):
    """A cron trigger EventBridge Scheduler would refuse (`invalid_cron`, `invalid_timezone`,
    `cron_never_fires`)."""

    code = "invalid_cron"


class SignatureError(Invalid):
    """A webhook delivery whose signature does not verify (`signature_missing`,
    `signature_mismatch`, `timestamp_out_of_tolerance`)."""

    code = "signature_mismatch"
