"""A variant of sample_app for output handling."""
