"""Microsoft Graph v1.0 mail adapter (`client.GraphClient`)."""
