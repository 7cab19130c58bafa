"""A variant of sample_app for the warm-start fallbacks."""
