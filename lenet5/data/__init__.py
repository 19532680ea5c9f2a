"""MNIST and other inputs: IDX files, the verified download, preprocessing to the network's
32x32 input, and digits from image files."""
