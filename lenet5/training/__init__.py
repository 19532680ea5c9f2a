"""Training: the SDLM loop (Appendix C), its step sizes and schedule, the random distortions of
§III.C, and checkpoints that resume a run bitwise."""
