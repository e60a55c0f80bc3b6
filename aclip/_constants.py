"""Defaults, in one place."""

#: Documents per request. Small batches overlap sending with the server's work; large ones cut overhead.
DEFAULT_BATCH_SIZE = 8
#: Requests in flight at once per call: memory holds about this many batches of inputs and answers.
DEFAULT_PREFETCH = 100
#: Seconds to wait for a connection to be established before failing with ConnectError.
DEFAULT_CONNECT_TIMEOUT = 10.0
#: The environment variable read for an auth token when no ``credential`` is given.
TOKEN_ENVIRONMENT_VARIABLE = "CLIP_AUTH_TOKEN"
#: The largest single message aclip accepts (WebSocket frames): a batch of large images needs far more
#: than aiohttp's 4 MiB default.
MAX_MESSAGE_SIZE = 1024 * 1024 * 1024
#: Seconds a request may wait for its answer before the call fails with RequestTimeoutError (None: no bound).
DEFAULT_TIMEOUT = 120.0
#: Seconds a readiness check (is_ready) waits for the gateway's dry run before answering False.
DEFAULT_READY_TIMEOUT = 5.0
#: How often a stream that failed transiently is retried (idempotent endpoints only).
DEFAULT_MAX_RETRIES = 2


class NotGiven:
    """The type of NOT_GIVEN: "use the client's default", as distinct from None ("no bound")."""

    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN = NotGiven()
