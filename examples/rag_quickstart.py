#!/usr/bin/python3
"""RAG quickstart for vectord: chunk text files, embed the chunks, store them with their text
as payload, then retrieve the passages that best answer a question.

Runs offline. Start a daemon first (`make run`, or `build/vectord serve`), then:

    export PYTHONPATH=client/python
    /usr/bin/python3 examples/rag_quickstart.py
    /usr/bin/python3 examples/rag_quickstart.py "how do Fresnel lenses work?"

The embedder below is a STAND-IN: hashed words and character n-grams, enough to find passages
that share words with the question, and deterministic so the example needs no model download. It
understands nothing. Swap in a real embedding model for real use (see `embed`).
"""
import argparse
import hashlib
import re
import textwrap
import zlib
from pathlib import Path

import numpy as np

import vectord

DIM = 256
DOCS = Path(__file__).resolve().parent / "docs"


# ---- stand-in embedder (NOT a language model) --------------------------------------------

STOPWORDS = set("a an and are as at be by do does for from how i in is it its my of on or "
                "so that the their they this to too what when which who why with".split())


def embed(texts):
    """STAND-IN EMBEDDER: the words (minus stop words) and the character 4-grams of each
    word of the lower-cased text are hashed (crc32, stable across runs) into 256 signed
    buckets; the vector is L2-normalized.
    To use a real model instead (pip install sentence-transformers), replace this body with:
        # from sentence_transformers import SentenceTransformer
        # model = SentenceTransformer("all-MiniLM-L6-v2")        # DIM = 384
        # return model.encode(texts, normalize_embeddings=True)
    """
    out = np.zeros((len(texts), DIM), dtype=np.float32)
    for row, text in enumerate(texts):
        words = [w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in STOPWORDS]
        features = [(w, 2.0) for w in words]
        features += [(f" {w} "[i:i + 4], 1.0) for w in words for i in range(len(w) - 1)]
        for feature, weight in features:
            h = zlib.crc32(feature.encode())
            out[row, h % DIM] += weight if (h >> 16) & 1 else -weight
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.maximum(norms, 1e-12)


# ---- chunking ----------------------------------------------------------------------------

def chunk(text, words=60, overlap=15):
    """Split text into passages of about `words` words that overlap by `overlap` words, so an
    answer cut by a boundary still appears whole in one passage."""
    tokens = text.split()
    step = words - overlap
    return [" ".join(tokens[i:i + words])
            for i in range(0, max(len(tokens) - overlap, 1), step)]


def chunk_id(source, number):
    """A stable 63-bit id per (file, chunk): re-running the example replaces, not duplicates."""
    digest = hashlib.sha1(f"{source}#{number}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("question", nargs="?",
                    default="How do bees keep warm in the hive during winter?")
    ap.add_argument("--address", default="127.0.0.1:7711")
    ap.add_argument("--token", default=None)
    ap.add_argument("--collection", default="rag_quickstart")
    ap.add_argument("-k", type=int, default=3)
    args = ap.parse_args()

    ids, texts, payloads = [], [], []
    for path in sorted(DOCS.glob("*.txt")):
        for number, passage in enumerate(chunk(path.read_text(encoding="utf-8"))):
            ids.append(chunk_id(path.name, number))
            texts.append(passage)
            payloads.append({"text": passage, "source": path.name, "chunk": number})

    with vectord.Client(args.address, token=args.token) as db:
        try:
            db.create_collection(args.collection, dim=DIM, metric="cosine")
        except vectord.AlreadyExists:
            pass  # a second run reuses it; the stable ids make the upsert replace chunks
        written = db.upsert(args.collection, ids, embed(texts), payloads=payloads)
        print(f"stored {written} passages from {len(set(p['source'] for p in payloads))} files "
              f"in '{args.collection}' ({db.count(args.collection)} points)\n")

        print(f"Q: {args.question}\n")
        for rank, hit in enumerate(db.search(args.collection, embed([args.question])[0],
                                             k=args.k), 1):
            p = hit.payload
            print(f"{rank}. {p['source']} #{p['chunk']}  (cosine distance {hit.distance:.3f})")
            print(textwrap.fill(p["text"], width=92, initial_indent="   ",
                                subsequent_indent="   ") + "\n")


if __name__ == "__main__":
    main()
