"""The engine: a call's input becomes batches, the batches go out while answers come in, answers find their rows.

The pipeline, each step a module that imports only the steps after it (and :mod:`aclip._wire`,
:mod:`aclip._transports` and the shared modules below them):

- :mod:`.call`: one call of an operation: its options checked once, then the steps below;
- :mod:`.inputs`: what the caller passes -> checked, auto-detected :class:`~aclip._models.Item` objects;
- :mod:`.batches`: items -> batches, every position recorded and every wire id chosen;
- :mod:`.loading` and :mod:`.fetch`: a batch's files, data URIs and (when asked) image URLs -> bytes, just
  before the batch is sent, bounded in time and size;
- :mod:`.stream`: the duplex engine: at most ``prefetch`` requests in flight over one lane per server,
  retried (:mod:`.retry`) within the call's deadline (:mod:`aclip._deadline`), on the transports of :mod:`.pool`;
- :mod:`.callbacks` and :mod:`.results`: each answer, checked, to the call's one handler: the caller's
  rows or Documents, the parts of ``encode_iter``, the callbacks.

:class:`~aclip.AsyncClient` runs one call of this pipeline per operation; nothing here knows which protocol a
server speaks (that is :mod:`aclip._transports`) or how a message is encoded (that is :mod:`aclip._wire`).
"""
