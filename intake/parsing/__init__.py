"""Parsing of a raw message into what the pipeline needs. (Pure: no I/O, no sessions.)"""
