"""failboard."""
