"""Why a request failed inside the server: one type, parsed once from the answer's ``header.status``.

The engine parses a failed answer's status once (:func:`aclip._wire.protobuf.executor_failure`) and hands the
same :class:`ResponseStatus` to the callbacks (``Response.status``) and, when nobody takes the failure, to
the error the call raises (:meth:`ResponseStatus.error`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .._exceptions import ServerError


@dataclass(frozen=True)
class ResponseStatus:
    """Why a request failed inside the server: the executor's exception name and message, and which executor.

    Example::

        def on_error(response):
            print(response.status.name, response.status.description)
    """

    name: str
    description: str
    executor: str

    def error(self, *, endpoint: str, positions: Sequence[int]) -> ServerError:
        """The ServerError that tells the caller about this failure and the input positions it hit."""
        return ServerError(
            name=self.name, description=self.description, executor=self.executor, endpoint=endpoint, positions=positions
        )
