"""colorize-rt: Colorful Image Colorization (Zhang, Isola & Efros, ECCV 2016), trained, exported and deployed."""

__version__ = "0.1.0"
