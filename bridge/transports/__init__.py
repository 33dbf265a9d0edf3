"""The transports wing: OSC over UDP and TCP, ZeroMQ and HTTP servers, socket binding, routing, rate limits."""
