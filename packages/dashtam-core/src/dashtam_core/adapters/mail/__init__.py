"""adapters mail package."""
