"""An aiohttp service that embeds sentences with aclip.

    CLIP_SERVER=grpc://127.0.0.1:51000 python examples/aiohttp_app.py
    curl -s -X POST localhost:8080/embed -d '{"sentences": ["a cat"]}'

One AsyncClient for the whole app, opened and closed with it; each request awaits its embeddings
without blocking the event loop. The sentences come from users, so the client takes every string as
text (``strings_are_text=True``): a string that looks like an image path is not read from disk.
"""

import os

from aiohttp import web

from aclip import AsyncClient

CLIP_SERVER = os.environ.get("CLIP_SERVER", "grpc://127.0.0.1:51000")
CLIP = web.AppKey("clip", AsyncClient)


async def clip_client(app: web.Application):
    # strings_are_text: a user's "/etc/secret.png" is a sentence, never a file to read.
    async with AsyncClient(CLIP_SERVER, timeout=30, strings_are_text=True) as client:
        app[CLIP] = client
        yield


async def embed(request: web.Request) -> web.Response:
    body = await request.json()
    vectors = await request.app[CLIP].aencode(body["sentences"])
    return web.json_response({"embeddings": vectors.tolist()})


async def ready(request: web.Request) -> web.Response:
    return web.json_response({"ready": await request.app[CLIP].ais_ready(timeout=2)})


def make_app() -> web.Application:
    app = web.Application()
    app.cleanup_ctx.append(clip_client)
    app.router.add_post("/embed", embed)
    app.router.add_get("/ready", ready)
    return app


if __name__ == "__main__":
    web.run_app(make_app(), host="127.0.0.1", port=8080)
