"""The image pipeline around a network: pure numpy/OpenCV, no backend state (torch-free).

* ``images``: decode anything Pillow reads into a ``DecodedImage``; write atomically.
* ``modes``: fit / tiled / transfer colorization around a ``predict`` callable; recombination.
* ``compose`` / ``remap``: L* + ab -> output pixels at full resolution (float and 8-bit table paths).
* ``folder``: many inputs (files, folders, globs), colorized in parallel lanes (one photo per lane).

The pipeline never imports a backend (``runtime.backends``); ``runtime.api`` joins the two.
"""
