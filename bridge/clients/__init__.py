"""The clients wing: OSC and ZeroMQ clients, `continuo generate` and the other job commands, `continuo prune` and
`continuo trash`, `continuo send`."""
