"""Task groups raise exception groups; callers should see the one error that matters."""

from __future__ import annotations

import sys
from typing import List

import anyio

from ._errors import AclipError

if sys.version_info >= (3, 11):
    from builtins import BaseExceptionGroup
else:  # pragma: no cover - exercised on older Pythons only
    from exceptiongroup import BaseExceptionGroup

__all__ = ["BaseExceptionGroup", "first_error"]


def first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error to show the caller: the first aclip error in the group, else its first leaf."""
    leaves: List[BaseException] = []

    def collect(error: BaseException) -> None:
        if isinstance(error, BaseExceptionGroup):
            for inner in error.exceptions:
                collect(inner)
        else:
            leaves.append(error)

    collect(group)
    cancelled = anyio.get_cancelled_exc_class()
    meaningful = [leaf for leaf in leaves if not isinstance(leaf, cancelled)]
    for leaf in meaningful:
        if isinstance(leaf, AclipError):
            return leaf
    return (meaningful or leaves)[0]
