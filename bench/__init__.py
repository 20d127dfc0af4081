"""The gateway benchmark: throughput, latency overhead, CPU per request and slow-stream capacity on loopback."""
