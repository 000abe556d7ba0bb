"""What devices are and what they say: canonical events, codecs, (later) the registry.

Imports nothing from the other carewatch packages.
"""
