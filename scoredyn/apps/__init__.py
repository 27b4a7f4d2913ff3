"""The applications: the command line, the verification of the theorem, the benchmarks, the plots."""
