"""Reference adapters implementing the ports."""
