"""jobs wing."""
