"""Audio pipeline for call media: G.711 µ-law, stateful resampling, Silero VAD,
and the streaming two-channel call recorder.

Everything here is pure computation on bytes/numpy arrays with per-call state
objects, so the call session can run it on the hot path without I/O (apart from
the recorder, which appends to its file in chunks of about one second).
"""

from calls.audio.mulaw import MULAW_SILENCE, mulaw_decode, mulaw_encode
from calls.audio.recorder import TwoChannelRecorder
from calls.audio.resample import StreamResampler
from calls.audio.vad import SileroVAD, VadBatcher, VadEvent, VadSettings, VadStream

__all__ = [
    "MULAW_SILENCE",
    "SileroVAD",
    "StreamResampler",
    "TwoChannelRecorder",
    "VadBatcher",
    "VadEvent",
    "VadSettings",
    "VadStream",
    "mulaw_decode",
    "mulaw_encode",
]
