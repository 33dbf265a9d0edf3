"""The clients wing: OSC and ZeroMQ clients, the daemon process helper and `continuo send`."""
