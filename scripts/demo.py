"""The main job on a fresh machine: start the embedded reference server, encode sentences and an image.

    python scripts/demo.py

The reference server embeds with a deterministic test encoder (no model weights are downloaded), so the
similarities it shows are those of hashes, not of meaning: the demo shows the plumbing, not CLIP's taste.
"""

from __future__ import annotations

import pathlib
import tempfile

import numpy as np

from aclip import Client, Document
from aclip.testing import embed_text, sample_png, serve_in_thread


def main() -> None:
    with serve_in_thread() as server, tempfile.TemporaryDirectory() as folder:
        image_path = pathlib.Path(folder) / "apple.png"
        image_path.write_bytes(sample_png(32, 24, seed=7))
        url = server.url("grpc")
        print(f"reference server (deterministic test encoder) at {', '.join(server.urls.values())}")

        with Client(url) as client:
            sentences = ["she smiled, with pain", "a photo of an apple", "she smiled, with pain"]
            vectors = client.encode([*sentences, str(image_path)], batch_size=2)
            print(f"encode(3 sentences + 1 image path) -> array {vectors.shape} {vectors.dtype}")
            similarity = vectors @ vectors.T
            print("cosine similarity of the four inputs:")
            for row in similarity:
                print("   " + "  ".join(f"{value:+.3f}" for value in row))

            docs = client.encode([Document(text="hi"), Document(uri=str(image_path))])
            print(f"encode(2 Documents) -> {len(docs)} Documents, embeddings {[d.embedding.shape for d in docs]}")

        assert np.array_equal(vectors[0], embed_text(sentences[0])), "the server's answer is not the test encoder's"
        print("embeddings match the test encoder exactly; identical inputs have similarity 1.000")

        for protocol in ("http", "websocket"):
            with Client(server.url(protocol)) as client:
                same = client.encode([*sentences, str(image_path)], batch_size=2)
            print(f"over {protocol:9} {server.url(protocol)}: identical to gRPC: {np.array_equal(same, vectors)}")


if __name__ == "__main__":
    main()
