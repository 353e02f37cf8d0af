"""What tests and benchmarks share: worlds, rigs, fixtures' helpers, the import graph."""
