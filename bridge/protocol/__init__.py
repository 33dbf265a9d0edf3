"""protocol wing."""
