"""Errors a user can act on.

Every error the CLI or the HTTP layer shows is one of these: one line that names the
thing that was wrong and how to fix it. The estimator raises them; the CLI prints ``fitagent: <message>`` and exits
with ``exit_code``; the HTTP layer answers ``{"error": message}`` with ``http_status``.
"""


class FitagentError(Exception):
    exit_code = 1
    http_status = 500


class UsageError(FitagentError):
    """Bad input from the user: unknown model, bad context, malformed file."""

    exit_code = 2
    http_status = 400


class NotFoundError(UsageError):
    http_status = 404


class DataError(FitagentError):
    """A data or config file shipped with (or given to) fitagent is invalid."""

    exit_code = 2
