"""The paper's math in pure NumPy: layers, criteria, RBF codes, the architecture, the network's
forward, gradient and curvature passes, and the lean inference pass. Knows nothing of processes
or files."""
