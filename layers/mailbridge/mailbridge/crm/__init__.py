"""Built-in CRM: contacts, companies, deals (with a per-tenant pipeline) and campaigns."""
