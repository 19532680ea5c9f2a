"""Evaluation: test metrics, confusion data, the most confident mistakes, and the PNG plots."""
