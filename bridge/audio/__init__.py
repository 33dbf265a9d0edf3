"""audio wing."""
