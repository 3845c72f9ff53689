"""G.711 µ-law with exact numpy lookup tables.

`audioop` is deprecated on 3.11 and gone in 3.13, so we build the tables once at
import. The encoder follows CPython's `audioop.lin2ulaw` algorithm (14-bit
magnitude, clip at 8159, bias 33, segment search) because the common "bias 0x84
on 16 bits" shortcut differs from it on 381 inputs; the decoder is the standard
G.711 expansion, bit-identical to `audioop.ulaw2lin`.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

# The 8 segment end points of the 14-bit magnitude scale used by G.711.
_SEGMENT_ENDS = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], dtype=np.int32)


def _build_decode_table() -> npt.NDArray[np.int16]:
    u = np.arange(256, dtype=np.int32) ^ 0xFF
    exponent = (u >> 4) & 7
    mantissa = ((u & 0xF) << 3) + 0x84
    return np.where(u & 0x80, 0x84 - (mantissa << exponent), (mantissa << exponent) - 0x84).astype(np.int16)


def _build_encode_table() -> npt.NDArray[np.uint8]:
    x = np.arange(-32768, 32768, dtype=np.int32) >> 2
    mag = np.minimum(np.abs(x), 8159) + 33
    seg = np.searchsorted(_SEGMENT_ENDS, mag)
    val = np.where(seg > 7, 0x7F, (seg << 4) | ((mag >> (np.minimum(seg, 7) + 1)) & 0xF))
    return (val ^ np.where(x < 0, 0x7F, 0xFF)).astype(np.uint8)


DECODE_TABLE: npt.NDArray[np.int16] = _build_decode_table()
ENCODE_TABLE: npt.NDArray[np.uint8] = _build_encode_table()
DECODE_TABLE.flags.writeable = False
ENCODE_TABLE.flags.writeable = False

#: µ-law code of a zero sample (what a carrier plays as silence).
MULAW_SILENCE: int = int(ENCODE_TABLE[32768])


def mulaw_to_array(data: bytes) -> npt.NDArray[np.int16]:
    """µ-law bytes → int16 samples (new array)."""
    return DECODE_TABLE[np.frombuffer(data, dtype=np.uint8)]


def array_to_mulaw(samples: npt.NDArray[np.int16]) -> bytes:
    """int16 samples → µ-law bytes."""
    if samples.dtype != np.int16:
        raise TypeError(f"array_to_mulaw expects int16 samples, got {samples.dtype}")
    return ENCODE_TABLE[samples.astype(np.int32) + 32768].tobytes()


def mulaw_decode(data: bytes) -> bytes:
    """µ-law bytes → little-endian PCM16 bytes (2 bytes per input byte)."""
    return mulaw_to_array(data).tobytes()


def mulaw_encode(pcm16: bytes) -> bytes:
    """Little-endian PCM16 bytes → µ-law bytes (1 byte per sample)."""
    if len(pcm16) % 2:
        raise ValueError(f"PCM16 data must have an even number of bytes, got {len(pcm16)}")
    return array_to_mulaw(np.frombuffer(pcm16, dtype="<i2").astype(np.int16, copy=False))


def _quiet_codes(max_level: int) -> bytes:
    return bytes(c for c in range(256) if abs(int(DECODE_TABLE[c])) <= max_level)


_QUIET_300 = _quiet_codes(300)


def mulaw_is_audible(data: bytes, quiet: bytes = _QUIET_300) -> bool:
    """Whether any sample exceeds |300| (about -40 dBFS), without decoding:
    `bytes.translate` deletes the quiet codes in C, so this costs well under a
    microsecond per 20 ms frame."""
    return bool(data.translate(None, quiet))


_QUIET_FLOOR_CACHE: dict[int, bytes] = {}


def mulaw_quiet_codes(max_level: int) -> bytes:
    """The µ-law codes whose decoded magnitude is below `max_level`."""
    codes = _QUIET_FLOOR_CACHE.get(max_level)
    if codes is None:
        codes = bytes(c for c in range(256) if abs(int(DECODE_TABLE[c])) < max_level)
        _QUIET_FLOOR_CACHE[max_level] = codes
    return codes
