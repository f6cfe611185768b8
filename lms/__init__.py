"""The ``lms`` command line."""
