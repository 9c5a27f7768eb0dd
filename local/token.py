"""Print a bearer token signed by the running local runner's dev issuer.

make -s token TENANT=acme ROLE=admin            (from the repository root, no venv needed)
python -m local.token --tenant acme --role admin [--sub alice] [--ttl 3600]   (inside the venv)
"""

from __future__ import annotations

import argparse
import sys

from local.auth import Issuer, NoIssuerError

ROLES = ("owner", "admin", "member", "viewer")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.token", description=__doc__.splitlines()[0])
    parser.add_argument("--tenant", required=True, help="tenant_id claim")
    parser.add_argument("--role", required=True, choices=ROLES, help="role claim")
    parser.add_argument("--sub", default="local-user", help="sub claim (default: local-user)")
    parser.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default: 3600)")
    args = parser.parse_args(argv)
    try:
        issuer = Issuer.load()
    except NoIssuerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(issuer.token(tenant=args.tenant, role=args.role, sub=args.sub, ttl=args.ttl))
    return 0


if __name__ == "__main__":
    sys.exit(main())
