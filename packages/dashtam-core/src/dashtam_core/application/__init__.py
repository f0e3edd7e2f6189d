"""The application layer: commands, queries, handlers and the message bus."""
