"""The transports wing: UDP, TCP and ZeroMQ servers, socket binding, peers and routing, rate limits."""
