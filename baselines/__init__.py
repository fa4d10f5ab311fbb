"""Baseline search strategies the DDPNAS paper compares against, on the shared engine."""
