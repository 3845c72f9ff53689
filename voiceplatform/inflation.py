"""How large a compressed HTTP body becomes, counted without keeping it (for the outbound guard).

The guard's size cap counts the bytes that arrive, but HTTP clients then decompress them
(``Content-Encoding``): a 10 MB gzip of zeros is 10 GB in the caller's memory. A
size-capped request therefore accepts only the codings counted here (gzip and deflate,
``ACCEPT_ENCODING``), and :class:`InflatedSize` inflates each arriving piece in steps of at
most 64 KB of output, discarding it, so the inflated size is known (and cut off at the
cap) before the client's own decoder builds the body. A coding the request did not accept
(``br``, ``zstd``) or several stacked (each could multiply the size again) cannot be
counted and is refused.
"""
from __future__ import annotations

import zlib

#: What a size-capped request accepts: codings whose inflated size can be counted.
ACCEPT_ENCODING = "gzip, deflate"
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


class InflatedSize:
    """Counts what one gzip/deflate body inflates to, piece by piece, keeping none of it."""

    def __init__(self, coding: str) -> None:
        self._coding = coding
        self._inflater = zlib.decompressobj(_WBITS[coding])
        self._raw_deflate_tried = False

    @classmethod
    def for_encoding(cls, content_encoding: str) -> InflatedSize | None:
        """The counter for a ``Content-Encoding`` header (None: not encoded); ValueError,
        naming the coding, for one that cannot be counted."""
        codings = [c.strip().lower() for c in content_encoding.split(",")
                   if c.strip() and c.strip().lower() != "identity"]
        if not codings:
            return None
        if len(codings) > 1 or codings[0] not in _WBITS:
            raise ValueError(f"the response is compressed as {content_encoding!r}, which was not accepted "
                             f"(only {ACCEPT_ENCODING}, once), so its size cannot be bounded")
        return cls(codings[0])

    def count(self, chunk: bytes, room: int) -> int:
        """Bytes ``chunk`` inflates to, counted up to a little past ``room``."""
        total, data = 0, chunk
        while data and total <= room:
            try:
                total += len(self._inflater.decompress(data, 64 * 1024))
            except zlib.error:
                if self._coding != "deflate" or self._raw_deflate_tried:
                    return total  # undecodable: the client's own decoder reports it
                self._raw_deflate_tried = True  # "deflate" comes with or without the zlib wrapper
                self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
                continue
            data = self._inflater.unconsumed_tail
        return total
