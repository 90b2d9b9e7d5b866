"""Parley: a voice-agent session service over gRPC, embeddable in Python."""

__version__ = "0.2.0"
