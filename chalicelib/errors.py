"""What went wrong, in the service's own terms. The services raise these; app.py alone maps
them to HTTP statuses and Chalice's error shape (HTTP_ERRORS there)."""


# Said by the app for an unknown token and by API Gateway (gateway response) for a missing one.
MISSING_TOKEN = "missing or invalid API token: send the header 'Authorization: Bearer <token>'"
# Said by API Gateway (MISSING_AUTHENTICATION_TOKEN gateway response) and the local gateway for a
# method and path no route has: API Gateway tells an unknown path and an unknown method apart from
# nothing else, so both are this 404.
NO_ROUTE = "no route for this method and path; the API's routes are described at /openapi.json"


class ServiceError(Exception):
    def __init__(self, message: str, errors: list[dict] | None = None):
        super().__init__(message)
        self.message = message
        self.errors = errors  # every problem, [{"field", "message"}], when input was checked as a whole


class BadRequest(ServiceError):
    """The input is malformed or names something that cannot be."""


class Unauthorized(ServiceError):
    """No caller: a missing or unknown token."""


class NotFound(ServiceError):
    """No such resource for this caller (another owner's resource is not found either)."""


class Conflict(ServiceError):
    """The resource is in the wrong state for the action."""


class NotReady(Conflict):
    """Nothing to hand out yet (an archive of a batch still running): ask again later."""


class TooLarge(ServiceError):
    """Over a size or count limit."""
