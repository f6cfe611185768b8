"""Pure parsing of a raw message into what the pipeline needs. No I/O, no sessions."""
