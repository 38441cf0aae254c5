"""Errors the services raise; app.py turns them into Chalice's error shape.

`code` follows Chalice's own names so clients see one vocabulary whether the
error came from us or from Chalice itself.
"""


# Said by the app for an unknown token and by API Gateway (gateway response) for a missing one.
MISSING_TOKEN = "missing or invalid API token: send the header 'Authorization: Bearer <token>'"


class ServiceError(Exception):
    status = 500
    code = "InternalServerError"

    def __init__(self, message: str, errors: list[dict] | None = None):
        super().__init__(message)
        self.message = message
        self.errors = errors  # every problem, [{"field", "message"}], when input was checked as a whole


class BadRequest(ServiceError):
    status = 400
    code = "BadRequestError"


class Unauthorized(ServiceError):
    status = 401
    code = "UnauthorizedError"


class NotFound(ServiceError):
    status = 404
    code = "NotFoundError"


class Conflict(ServiceError):
    status = 409
    code = "ConflictError"


class TooLarge(ServiceError):
    status = 413
    code = "PayloadTooLargeError"
