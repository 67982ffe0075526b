"""The contract: pydantic models that are the single source of truth for every wire format."""
