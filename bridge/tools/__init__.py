"""tools wing."""
