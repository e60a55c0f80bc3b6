"""What aclip knows about each endpoint of a CLIP server, in one table.

Three rules differ between the endpoints, and each follows from what the endpoint does on the server:

- ``idempotent``: sending a request twice is harmless, so a failed stream's requests are resent (index
  stores documents: it is not retried);
- ``spread``: a call's batches may go to every server of the client (each server may keep an index of its
  own, so index and search use one);
- ``own_ids``: aclip puts ids of its own on the wire (a CLIP server merges documents that share an id);
  index sends the caller's ids, since it stores them.

``/encode/ViT-B-32`` (a ``model_name``) follows the rules of ``/encode``; an endpoint aclip does not know
follows the most careful rules (no retry, one server, the caller's ids).

Example::

    >>> rules_for("/encode/ViT-B-32").spread, rules_for("/index").idempotent
    (True, False)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EndpointRules:
    """How aclip treats calls to one endpoint (see the module docstring)."""

    idempotent: bool
    spread: bool
    own_ids: bool


_CAREFUL = EndpointRules(idempotent=False, spread=False, own_ids=False)
_RULES = {
    "/": EndpointRules(idempotent=True, spread=True, own_ids=True),  # profile's request
    "/encode": EndpointRules(idempotent=True, spread=True, own_ids=True),
    "/rank": EndpointRules(idempotent=True, spread=True, own_ids=True),
    "/search": EndpointRules(idempotent=True, spread=False, own_ids=True),
    "/index": _CAREFUL,
}


def rules_for(endpoint: str) -> EndpointRules:
    """The rules of ``endpoint``: its own, its base's (``/encode/<model>``), or the careful ones."""
    if endpoint in _RULES:
        return _RULES[endpoint]
    base = "/" + endpoint.lstrip("/").split("/", 1)[0]
    return _RULES.get(base, _CAREFUL) if base != "/" else _CAREFUL
