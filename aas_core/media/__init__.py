"""Images and files: one decoder with one set of limits, the image store, video frames."""
