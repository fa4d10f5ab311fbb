"""Retraining found networks from scratch: the loop, its setup, torchrun launch and the
ImageNet protocols."""
