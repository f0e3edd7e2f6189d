"""adapters memory package."""
