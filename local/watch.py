"""Print every frame the running local runner's WebSocket API sends one user (`make watch`).

make watch [TENANT=demo ROLE=owner]                      (from the repository root)
python -m local.watch [--tenant demo] [--sub local-user] [--url ws://127.0.0.1:3001]
"""

from __future__ import annotations

import argparse
import os
import sys

from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from local.auth import Issuer, NoIssuerError
from local.token import ROLES


def websocket_port_for(port: int) -> int:
    """The WebSocket API's port of a runner serving HTTP on `port`: $WEBSOCKET_PORT, else the next
    port (3001 beside 3000), else a free one (PORT=0, as the tests start it)."""
    configured = os.environ.get("WEBSOCKET_PORT")
    if configured:
        return int(configured)
    return port + 1 if port else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.watch", description=__doc__.splitlines()[0])
    parser.add_argument("--tenant", default="demo", help="tenant_id claim (default: demo)")
    parser.add_argument("--role", default="owner", choices=ROLES, help="role claim (default: owner)")
    parser.add_argument("--sub", default="local-user", help="sub claim: the user (default: local-user)")
    default_url = f"ws://127.0.0.1:{websocket_port_for(int(os.environ.get('PORT') or 3000))}"
    parser.add_argument("--url", default=default_url, help=f"WebSocket API (default: {default_url})")
    args = parser.parse_args(argv)
    try:
        token = Issuer.load().token(tenant=args.tenant, role=args.role, sub=args.sub)
    except NoIssuerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        with connect(args.url, additional_headers={"Authorization": f"Bearer {token}"}) as websocket:
            print(f"connected to {args.url} as {args.sub} of {args.tenant}; Ctrl-C to stop", flush=True)
            for message in websocket:
                print(message if isinstance(message, str) else message.decode("utf-8", "replace"), flush=True)
    except InvalidStatus as exc:
        print(f"error: refused with HTTP {exc.response.status_code}", file=sys.stderr)
        return 1
    except (OSError, ConnectionClosed) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
