"""transports wing."""
