"""`python -m local.google --port N`: the Google double as a process, printing its URLs.

Optionally registers an OAuth client, one account/mailbox and a push topic so a running
`make run` can connect to it at once; everything else goes through the control API.
"""

from __future__ import annotations

import argparse
import json
import logging

from local import interrupt
from local.google.double import GoogleDouble


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.google", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--client-id")
    parser.add_argument("--client-secret")
    parser.add_argument("--redirect-uri", action="append", default=[])
    parser.add_argument("--user", help="create this account and mailbox")
    parser.add_argument("--topic", help="projects/{project}/topics/{topic} to create")
    parser.add_argument("--push-endpoint", help="where the topic's push subscription delivers")
    parser.add_argument("--audience", help="OIDC audience of pushes (default: the push endpoint)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    interrupt.install()
    with GoogleDouble(host=args.host, port=args.port, seed=args.seed) as google:
        if args.redirect_uri:
            client = google.register_client(args.redirect_uri, args.client_id, args.client_secret)
            print(f"OAuth client: {client.client_id} (secret {client.client_secret})")
        if args.user:
            google.add_user(args.user)
            print(f"Account and mailbox: {args.user}")
        if args.topic:
            google.create_topic(args.topic, args.push_endpoint, args.audience)
            print(f"Pub/Sub topic: {args.topic} -> {args.push_endpoint or '(no push endpoint)'}")
        print("Google double URLs:")
        print(json.dumps(google.urls(), indent=2), flush=True)
        print("Ctrl-C to stop.", flush=True)
        try:
            interrupt.wait_for_interrupt()
        except KeyboardInterrupt:
            print("\nstopping...")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
