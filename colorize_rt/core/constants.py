"""Constants shared by training, export and runtime (the paper's and the official release's)."""

L_CENT = 50.0  # network input is (L - L_CENT) / L_NORM, as in the official eccv16 release
L_NORM = 100.0
AB_NORM = 110.0  # ab regression outputs are scaled by this
DEFAULT_T = 0.38  # annealed-mean temperature (paper section 2.2)
NUM_BINS = 313
GRID = 10
SIGMA_SOFT = 5.0  # soft-encoding Gaussian
SIGMA_PRIOR = 5.0  # prior smoothing Gaussian
LAMBDA_REBAL = 0.5
NET_MULTIPLE = 8  # network input height/width must be multiples of this
NET_MIN_SIDE = 32  # ... and at least this (the encoder downsamples 32x); narrower inputs are edge-padded
