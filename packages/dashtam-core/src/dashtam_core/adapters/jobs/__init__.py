"""adapters jobs package."""
