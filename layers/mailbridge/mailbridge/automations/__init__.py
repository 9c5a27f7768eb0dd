"""No-code automations: JSON-Logic conditions, templated action parameters, action schemas,
webhook signing and cron triggers.

Plain functions over pydantic models with their dependencies passed in; nothing here touches
AWS or the network (outbound calls go through `mailbridge.providers.http`). Each module imports
its heavy dependency (datalogic_py, jinja2) inside the function that needs it.
"""
