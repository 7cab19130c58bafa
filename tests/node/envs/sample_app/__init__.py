"""A small app for the environment tests (see `__main__`)."""
