"""The pure domain: value objects, entities, state machines and events (standard library only)."""
