"""pgvector's text form read back as numpy: the one parser the search's second stage and the bench share.

A raw cursor returns a `vector` column as pgvector's text form "[0.1,0.2,...]" (no pgvector adapter is registered
on the connection). pgvector prints each float32 component with the fewest digits that read back as that float32,
so the text parsed as float64 and cast to float32 is the stored vector exactly (knowledge.feedback wants float32,
knowledge.anisotropy float64 for its statistics). No Django here.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from numpy.typing import DTypeLike


def parse_vector(value: Any, dtype: DTypeLike = np.float64) -> np.ndarray:
    """A pgvector value as the database returns it in a raw cursor ("[0.1,0.2]" text, or an array), as `dtype`."""
    if isinstance(value, str):
        return np.asarray(json.loads(value), dtype=dtype)
    return np.asarray(value, dtype=dtype)
