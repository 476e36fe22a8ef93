"""Request and response shapes of the HTTP API, kept apart (`requests`, `responses`)."""
