"""Data sets: CIFAR-10, ImageNet (and its stand-in), batching, and where the files are."""
