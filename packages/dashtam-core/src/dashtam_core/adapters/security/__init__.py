"""adapters security package."""
