"""Parallel execution: a batch cut into chunks (one per process) and cache-sized pieces, the worker
processes that compute the chunks in shared memory, and process-level allocator tuning. Given shapes
and a compute function; knows nothing of the network it runs."""
