"""Domain errors. Services raise these; `portal.api_errors.exception_handler` maps each one once to the terminal
API's `{"code", "message", "details"}` body with its HTTP status."""

from __future__ import annotations


class DomainError(Exception):
    code = "ERROR"
    status = 400
    default_message = "The request could not be completed."

    def __init__(self, message: str | None = None, *, details: dict | None = None, code: str | None = None):
        self.message = message or self.default_message
        self.details = details or {}
        if code:
            self.code = code
        super().__init__(self.message)


class InvalidInput(DomainError):
    code = "INVALID_INPUT"
    status = 400
    default_message = "Some fields are invalid."


class NotFound(DomainError):
    code = "NOT_FOUND"
    status = 404
    default_message = "Not found."


class InvalidState(DomainError):
    code = "INVALID_STATE"
    status = 409
    default_message = "The object is not in a state that allows this action."


class Conflict(DomainError):
    code = "CONFLICT"
    status = 409
    default_message = "This conflicts with an existing object."


class Forbidden(DomainError):
    code = "FORBIDDEN"
    status = 403
    default_message = "You may not do this."


class UpstreamUnavailable(DomainError):
    code = "UPSTREAM_UNAVAILABLE"
    status = 503
    default_message = "The payment channel could not be reached; try again."


class ChannelBusy(UpstreamUnavailable):
    """Too many calls to one channel are open from this web process (a slow or failing channel): refused before
    anything is created or sent, so the terminal may simply try again."""

    code = "CHANNEL_BUSY"
    default_message = "The payment channel is busy; nothing was charged. Try again shortly."
    retry_after = 1  # seconds, sent as Retry-After
