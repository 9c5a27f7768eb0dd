"""External CRMs (Salesforce, HubSpot) behind one protocol: `protocol.CrmProvider`."""
