"""API tokens for a deployed stack.

    python -m deploy.tokens create --owner NAME [--stage prod] [--region REGION]

Makes a new random token, stores only its SHA-256 in the stage's meta table (the item
`token#<sha256>` that the authorizer looks up, chalicelib/services/auth.py) and prints the
token once: it cannot be shown again. Runs with your own AWS credentials (profile or
environment); it needs dynamodb:PutItem on the meta table. The table name comes from
.chalice/config.json for the stage, as in the deployed functions.

To revoke a token, delete its item:
    aws dynamodb delete-item --table-name <meta table> \\
        --key "{\\"id\\": {\\"S\\": \\"token#$(printf %s "$TOKEN" | sha256sum | cut -d' ' -f1)\\"}}"
"""
from __future__ import annotations

import argparse
import os
import secrets
import sys

from chalicelib.services.auth import token_hash
from chalicelib.settings import Settings

from . import template as tmpl

TOKEN_BYTES = 32  # 256 bits of randomness, URL-safe base64


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def validate_owner(owner: str) -> str:
    owner = owner.strip()
    if not owner or len(owner) > 100 or any(ord(c) < 32 or c in "#:," for c in owner):
        raise ValueError("owner must be 1-100 characters, without control characters, '#', ':' or ','")
    return owner


def create_token(repository, owner: str) -> str:
    """Store the hash of a new token for `owner` through the app's repository; return the token."""
    token = new_token()
    repository.save_token(token_hash(token), validate_owner(owner))
    return token


def settings_for_stage(stage: str, region: str | None = None, env=None) -> Settings:
    env = os.environ if env is None else env
    tables = tmpl.table_names(tmpl.load_config(), stage)
    if not region:
        import boto3
        region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or boto3.session.Session().region_name
    if not region:
        raise ValueError("no AWS region: pass --region or set AWS_REGION")
    return Settings(region=region, endpoint_url=env.get("AWS_ENDPOINT_URL") or None, tables=tables)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.tokens", description="API tokens of a deployed stack")
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="make a token for an owner and print it once")
    create.add_argument("--owner", required=True, help="who the token acts as (owns batches and pipelines)")
    create.add_argument("--stage", default=tmpl.DEFAULT_STAGE, help="Chalice stage (default: prod)")
    create.add_argument("--region", help="AWS region of the stack (default: from your AWS configuration)")
    args = parser.parse_args(argv)
    try:
        owner = validate_owner(args.owner)
        settings = settings_for_stage(args.stage, args.region)
    except (ValueError, tmpl.TemplateError) as exc:
        parser.error(str(exc))
    from chalicelib.wiring import Container
    token = create_token(Container(settings).repository, owner)
    print(f"Token for owner {owner!r} (stage {args.stage}, table {settings.table('meta')}, {settings.region}).\n"
          "It is shown only now; store it safely:\n", file=sys.stderr)
    print(token)
    return 0


if __name__ == "__main__":
    sys.exit(main())
