"""The paper's math in pure NumPy: layers (C1+S2 and C3+S4 over 2x2 windows), criteria, RBF codes,
the architecture, the network's forward, gradient and curvature passes, the lean inference
pass, and the bilinear resampling of the input images that the training distortions use. Knows
nothing of processes or files."""
