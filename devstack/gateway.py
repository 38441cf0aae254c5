"""Make `chalice local` answer a missing Authorization header as our API Gateway does.

In AWS the template's UNAUTHORIZED gateway response returns the Chalice error shape
(deploy/template.py); chalice's local gateway returns {"message": "Unauthorized"}.
Installed by devstack and tests/conftest.py so clients see one shape everywhere.
"""
from __future__ import annotations

import json

from chalicelib.errors import MISSING_TOKEN

BODY = json.dumps({"Code": "UnauthorizedError", "Message": MISSING_TOKEN}).encode()
_installed = False


def install() -> None:
    global _installed
    if _installed:
        return
    from chalice import local

    original = local.LocalGatewayAuthorizer._prepare_authorizer_event

    def prepare(self, arn, lambda_event, lambda_context):
        try:
            return original(self, arn, lambda_event, lambda_context)
        except local.NotAuthorizedError as exc:
            raise local.NotAuthorizedError({**exc.headers, "Content-Type": "application/json"}, BODY) from None

    local.LocalGatewayAuthorizer._prepare_authorizer_event = prepare
    _installed = True
