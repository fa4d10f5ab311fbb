"""The DARTS cell space: ops, genotype, search supernet and evaluation network."""
