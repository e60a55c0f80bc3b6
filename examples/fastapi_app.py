"""A FastAPI service that embeds sentences with aclip.

    CLIP_SERVER=grpc://127.0.0.1:51000 uvicorn examples.fastapi_app:app --port 8000
    curl -s -X POST localhost:8000/embed -H 'content-type: application/json' -d '{"sentences": ["a cat"]}'

One AsyncClient for the whole app, closed when the app stops; each request awaits its embeddings
without blocking the event loop. The sentences come from users, so the client takes every string as
text (``strings_are_text=True``): a string that looks like an image path is not read from disk.
"""

import os
from contextlib import asynccontextmanager

from fastapi import FastAPI
from pydantic import BaseModel

from aclip import AsyncClient

CLIP_SERVER = os.environ.get("CLIP_SERVER", "grpc://127.0.0.1:51000")
# strings_are_text: a user's "/etc/secret.png" is a sentence, never a file to read.
clip = AsyncClient(CLIP_SERVER, timeout=30, strings_are_text=True)


@asynccontextmanager
async def lifespan(app: FastAPI):
    yield
    await clip.aclose()


app = FastAPI(lifespan=lifespan)


class Sentences(BaseModel):
    sentences: list[str]


@app.post("/embed")
async def embed(body: Sentences) -> dict:
    vectors = await clip.aencode(body.sentences)
    return {"embeddings": vectors.tolist()}


@app.get("/ready")
async def ready() -> dict:
    return {"ready": await clip.ais_ready(timeout=2)}
