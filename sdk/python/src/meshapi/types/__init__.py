"""The SDK's pydantic models: requests (`chat`) and every response shape."""
