"""Make `chalice local` behave like API Gateway + Lambda where our clients can tell.

- A missing Authorization header: in AWS the template's UNAUTHORIZED gateway response
  returns the Chalice error shape (deploy/template.py); chalice's local gateway returns
  {"message": "Unauthorized"}.
- A method and path no route has: API Gateway answers MISSING_AUTHENTICATION_TOKEN, which the
  template maps to 404 NotFoundError; chalice local answered 403 "Missing Authentication Token"
  (or, with a bearer token, "Authorization header requires 'Credential' parameter"), and 405
  for a known path with another method.
- Concurrent requests: Lambda runs one request per process, so Chalice keeps the request
  on the app object (`app.current_request`). chalice local serves requests in threads, where
  one request's handler could read another's (a browser fetching a public asset while an
  authenticated call runs made that call answer 401). Each thread gets its own here.
Installed by devstack and tests/conftest.py.
"""
from __future__ import annotations

import json
import threading

from chalicelib.errors import MISSING_TOKEN, NO_ROUTE

BODY = json.dumps({"Code": "UnauthorizedError", "Message": MISSING_TOKEN}).encode()
NOT_FOUND_BODY = json.dumps({"Code": "NotFoundError", "Message": NO_ROUTE}).encode()
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

    class NoRoute(local.LocalGatewayException):
        CODE = 404

    generate = local.LocalGateway._generate_lambda_event

    def generate_or_404(self, method, path, headers, body):
        try:
            event = generate(self, method, path, headers, body)
        except ValueError:   # no route matches the path
            raise NoRoute({"Content-Type": "application/json"}, NOT_FOUND_BODY) from None
        if method not in self._app_object.routes.get(event["requestContext"]["resourcePath"], {}):
            raise NoRoute({"Content-Type": "application/json"}, NOT_FOUND_BODY)
        return event

    local.LocalGateway._generate_lambda_event = generate_or_404
    _per_thread_request_state()
    _installed = True


def _per_thread_request_state() -> None:
    from chalice import app

    state = threading.local()

    def attribute(name: str) -> property:
        return property(lambda self: getattr(state, name, None), lambda self, value: setattr(state, name, value))

    # a data descriptor on the class wins over the instance attribute Chalice assigns
    app.Chalice.current_request = attribute("current_request")
    app.Chalice.lambda_context = attribute("lambda_context")
