"""clients wing."""
