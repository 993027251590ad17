"""The picture a simulated phone attaches to an MMS, served by each simulator that offers MMS.

A simulator mounts `GET /_media/<name>` (no auth, like a presigned URL) and, when `POST /_inbound`
is given `"media": true` without `media_urls`, attaches its own URL of `parley.png`, so the local
stack's processor can fetch and copy the attachment as it would the carrier's (each carrier's
PARLEY_<CARRIER>_MEDIA_HOSTS_EXTRA names the stack's host:port).
"""

from __future__ import annotations

import struct
import zlib
from typing import Final

from werkzeug.exceptions import NotFound
from werkzeug.wrappers import Request, Response

DEFAULT_NAME: Final = "parley.png"


def _png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A solid-colour RGB PNG, built with the standard library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + bytes(rgb) * width  # filter type 0, then the pixels
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


FILES: Final[dict[str, tuple[bytes, str]]] = {DEFAULT_NAME: (_png(8, 8, (0x2A, 0x7A, 0xE2)), "image/png")}


def response(name: str) -> Response:
    """The named file, or a 404 (the simulator answers it in its carrier's error format)."""
    found = FILES.get(name)
    if found is None:
        raise NotFound()
    content, content_type = found
    return Response(content, content_type=content_type, headers={"Cache-Control": "no-store"})


def url(request: Request, name: str = DEFAULT_NAME) -> str:
    """This simulator's URL for `name`, as the request reached it (mount point included)."""
    return f"{request.url_root.rstrip('/')}/_media/{name}"
