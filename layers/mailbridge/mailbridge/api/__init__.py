"""HTTP API: Powertools routers (one per resource) included by one resolver in `api.app`."""
