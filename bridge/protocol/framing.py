"""OSC stream framing, shared by the TCP server and the TCP client.

- OSC 1.1: SLIP (RFC 1055), END = 0xC0; frames may or may not start with an END.
- OSC 1.0: each packet prefixed by its size as a big-endian int32 (liblo, SuperCollider).

`detect_framing` picks one from a connection's first byte: 0xC0, '/' or '#' is
SLIP (an OSC packet starts with '/' or '#bundle'; a length prefix under 16 MiB
starts with 0x00); anything else is a length prefix.
"""

from __future__ import annotations

import struct

SLIP_END, SLIP_ESC, SLIP_ESC_END, SLIP_ESC_ESC = 0xC0, 0xDB, 0xDC, 0xDD
MAX_FRAME_BYTES = 65536


class FramingError(Exception):
    """The byte stream cannot be split into OSC packets; the connection is closed."""


def slip_encode(packet: bytes) -> bytes:
    """Double-ended SLIP, as OSC 1.1 recommends."""
    body = packet.replace(bytes([SLIP_ESC]), bytes([SLIP_ESC, SLIP_ESC_ESC]))
    body = body.replace(bytes([SLIP_END]), bytes([SLIP_ESC, SLIP_ESC_END]))
    return bytes([SLIP_END]) + body + bytes([SLIP_END])


def length_prefix_encode(packet: bytes) -> bytes:
    return struct.pack(">i", len(packet)) + packet


class SlipDecoder:
    """feed(bytes) -> complete packets; empty frames (END END) are skipped."""

    name = "slip"

    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        self._frame = bytearray()
        self._escaped = False
        self._max = max_frame_bytes

    def feed(self, data: bytes) -> list[bytes]:
        packets = []
        for byte in data:
            if self._escaped:
                self._escaped = False
                if byte == SLIP_ESC_END:
                    self._frame.append(SLIP_END)
                elif byte == SLIP_ESC_ESC:
                    self._frame.append(SLIP_ESC)
                else:
                    raise FramingError(f"SLIP: byte 0x{byte:02x} after ESC; only 0xdc and 0xdd may follow it")
            elif byte == SLIP_END:
                if self._frame:
                    packets.append(bytes(self._frame))
                    self._frame.clear()
            elif byte == SLIP_ESC:
                self._escaped = True
            else:
                self._frame.append(byte)
            if len(self._frame) > self._max:
                raise FramingError(f"SLIP frame longer than {self._max} bytes")
        return packets

    @staticmethod
    def encode(packet: bytes) -> bytes:
        return slip_encode(packet)


class LengthPrefixDecoder:
    """feed(bytes) -> complete packets of an int32-size-prefixed stream."""

    name = "length-prefix"

    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        self._buffer = bytearray()
        self._max = max_frame_bytes

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        packets = []
        while len(self._buffer) >= 4:
            (size,) = struct.unpack_from(">i", self._buffer)
            if size <= 0 or size > self._max:
                raise FramingError(f"length prefix {size} is outside 1..{self._max} bytes")
            if len(self._buffer) < 4 + size:
                break
            packets.append(bytes(self._buffer[4:4 + size]))
            del self._buffer[:4 + size]
        return packets

    @staticmethod
    def encode(packet: bytes) -> bytes:
        return length_prefix_encode(packet)


def detect_framing(first_byte: int, max_frame_bytes: int = MAX_FRAME_BYTES) -> SlipDecoder | LengthPrefixDecoder:
    if first_byte in (SLIP_END, ord("/"), ord("#")):
        return SlipDecoder(max_frame_bytes)
    return LengthPrefixDecoder(max_frame_bytes)
