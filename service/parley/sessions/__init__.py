"""The session engine: registry, sessions, utterances, events. No gRPC in here."""
