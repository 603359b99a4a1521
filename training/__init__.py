"""Training of the 2D-to-3D lifter: `python -m training --help`."""
