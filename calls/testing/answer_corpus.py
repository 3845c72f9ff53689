"""The labelled answer-classification set: synthesized from ``answer_corpus.json`` with
espeak-ng (voices) and sox (tones, noise), at 8 kHz µ-law as a carrier streams it.

Nothing is committed but the manifest: clips are rendered on first use into a cache
directory keyed by the manifest's content (``ANSWER_CORPUS_DIR``, default the system
temp dir), so tests and ``bench/answer_bench.py`` hear the same audio. A clip without
its own ``voice`` is rendered once per manifest voice. Each clip carries the transcript
a provider's input transcription would deliver: the text of each ``say`` part, stamped
``TRANSCRIPT_LAG_MS`` after that part ends (a streaming transcriber's usual delay).

``missing_tools()`` names what is not installed; tests skip with that message.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from calls.audio.mulaw import array_to_mulaw

MANIFEST = Path(__file__).with_name("answer_corpus.json")
RATE = 8000
TRANSCRIPT_LAG_MS = 500
_SPEECH_LEVEL = 0.5  # peak, of full scale: a clear phone line


@dataclass(frozen=True)
class Clip:
    label: str
    name: str
    voice: str
    mulaw: bytes
    #: (ms into the clip, text) a provider's transcription would deliver
    transcripts: tuple[tuple[int, str], ...]

    @property
    def key(self) -> str:
        return f"{self.name}/{self.voice}" if self.voice else self.name


def missing_tools() -> str | None:
    absent = [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]
    if absent:
        return f"{' and '.join(absent)} not installed (make test installs them): the answer corpus cannot be synthesized"
    return None


def _run(args: list[str]) -> bytes:
    return subprocess.run(args, check=True, capture_output=True, timeout=60).stdout


def _sox_raw(*effect: str, source: list[str]) -> npt.NDArray[np.int16]:
    out = _run(["sox", *source, "-r", str(RATE), "-c", "1", "-b", "16", "-e", "signed-integer", "-t", "raw", "-",
                *effect])
    return np.frombuffer(out, dtype="<i2").copy()


def _say(text: str, voice: str, workdir: Path) -> npt.NDArray[np.int16]:
    wav = workdir / "say.wav"
    _run(["espeak-ng", "-v", voice, "-s", "165", "-w", str(wav), text])
    pcm = _sox_raw(source=[str(wav)])
    peak = float(np.abs(pcm).max()) or 1.0
    return (pcm.astype(np.float64) * (_SPEECH_LEVEL * 32767 / peak)).astype(np.int16)


def _tone(hz: float, seconds: float) -> npt.NDArray[np.int16]:
    return _sox_raw("synth", f"{seconds}", "sine", f"{hz}", "vol", "0.3",
                    source=["-n"])


def _noise(seconds: float, level: float, seed: int) -> npt.NDArray[np.int16]:
    # sox's noise is seeded from the clock; numpy's is repeatable (the set must not change between runs)
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(seconds * RATE)) * level * 32767).clip(-32767, 32767).astype(np.int16)


def _render(parts: list[dict[str, Any]], voice: str, workdir: Path, seed: int) -> tuple[bytes, list[tuple[int, str]]]:
    chunks: list[npt.NDArray[np.int16]] = []
    transcripts: list[tuple[int, str]] = []
    at = 0
    for index, part in enumerate(parts):
        if "say" in part:
            pcm = _say(part["say"], voice, workdir)
            if "over_noise" in part:
                pcm = (pcm.astype(np.int32) + _noise(len(pcm) / RATE, part["over_noise"], seed + index)[:len(pcm)]
                       ).clip(-32767, 32767).astype(np.int16)
        elif "pause" in part:
            pcm = np.zeros(int(part["pause"] * RATE), dtype=np.int16)
        elif "tone" in part:
            pcm = _tone(float(part["tone"]), float(part["seconds"]))
        elif "noise" in part:
            pcm = _noise(float(part["noise"]), float(part["level"]), seed + index)
        else:
            raise ValueError(f"answer corpus: part {index} has none of say/pause/tone/noise: {part}")
        chunks.append(pcm)
        at += len(pcm)
        if "say" in part:
            transcripts.append((at * 1000 // RATE + TRANSCRIPT_LAG_MS, str(part["say"])))
    return array_to_mulaw(np.concatenate(chunks)), transcripts


def _cache_dir(manifest_text: str) -> Path:
    root = Path(os.environ.get("ANSWER_CORPUS_DIR") or tempfile.gettempdir())
    digest = hashlib.sha256(manifest_text.encode()).hexdigest()[:16]
    return root / f"answer-corpus-{digest}"


def load_corpus(manifest: Path = MANIFEST) -> list[Clip]:
    """Every clip of the manifest, synthesized (or read from the cache)."""
    problem = missing_tools()
    if problem:
        raise RuntimeError(problem)
    text = manifest.read_text()
    spec = json.loads(text)
    cache = _cache_dir(text)
    cache.mkdir(parents=True, exist_ok=True)
    clips: list[Clip] = []
    for number, entry in enumerate(spec["clips"]):
        speaks = any("say" in part for part in entry["parts"])
        voices = [entry["voice"]] if "voice" in entry else (spec["voices"] if speaks else [""])
        for voice in voices:
            stem = f"{entry['name']}--{voice.replace('+', '_') or 'none'}"
            audio_path, meta_path = cache / f"{stem}.ulaw", cache / f"{stem}.json"
            if audio_path.exists() and meta_path.exists():
                mulaw, transcripts = audio_path.read_bytes(), [tuple(t) for t in json.loads(meta_path.read_text())]
            else:
                with tempfile.TemporaryDirectory() as workdir:
                    mulaw, transcripts = _render(entry["parts"], voice or "en-us", Path(workdir), seed=number * 97)
                audio_path.write_bytes(mulaw)
                meta_path.write_text(json.dumps(transcripts))
            clips.append(Clip(entry["label"], entry["name"], voice, mulaw,
                              tuple((int(at), str(said)) for at, said in transcripts)))
    return clips


__all__ = ["MANIFEST", "TRANSCRIPT_LAG_MS", "Clip", "load_corpus", "missing_tools"]
