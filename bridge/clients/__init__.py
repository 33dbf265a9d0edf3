"""The clients wing: OSC and ZeroMQ clients, `continuo generate` and the other job commands, `continuo jam`,
`continuo prune` and `continuo trash`, `continuo send`."""
