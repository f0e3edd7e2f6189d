"""adapters redis package."""
