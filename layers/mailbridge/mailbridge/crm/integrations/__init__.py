"""CRM integrations: connecting Salesforce orgs and HubSpot portals (OAuth web server flow with
PKCE, the Salesforce device flow, HubSpot's authorization code flow), their sealed tokens and
refresh, and `provider_for` building a `CrmProvider` for one integration."""
