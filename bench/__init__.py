"""The gateway benchmark: throughput, latency overhead, CPU per request, slow-stream capacity."""
