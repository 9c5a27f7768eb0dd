"""Email templates: versions, rendering in the automations sandbox, preview, A/B variants, stats."""
