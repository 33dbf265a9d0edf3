"""The protocol wing: the wire as data (schema, ZeroMQ frames, OSC stream framing) and the docs made from it."""
