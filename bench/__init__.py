"""Benchmarks (`make bench`) and the fault run (`make faults`, `make faults-small`): see README "Performance and
reliability". Nothing here is imported by the product."""
