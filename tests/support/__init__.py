"""Test helpers: real services, a real SMTP sink, a TCP proxy that can be cut."""
