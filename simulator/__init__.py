"""A fast loopback fake of the upstream LLM providers (OpenAI, Anthropic, Gemini) for tests and benchmarks."""
