"""Domain errors. Each carries a stable machine-readable ``code``; core.http maps them to status codes."""

from __future__ import annotations


class DomainError(Exception):
    code = "bad_request"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidParameter(DomainError):
    """A request parameter is missing, malformed or out of range."""

    code = "invalid_parameter"

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter


class InvalidRequest(DomainError):
    """The request as a whole is malformed (not tied to one parameter)."""

    code = "invalid_request"


class Forbidden(DomainError):
    """The caller's API key may not use this endpoint."""

    code = "forbidden"


class NotFound(DomainError):
    code = "not_found"


class PayloadTooLarge(DomainError):
    code = "payload_too_large"


class ServiceUnavailable(DomainError):
    """A dependency is overloaded; the client should retry after ``retry_after`` seconds."""

    code = "service_unavailable"

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after
