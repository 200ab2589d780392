"""Person detectors (COCO class 0). One module per backend; pick one via ``aas_core.vision.backends``,
which imports a backend's module (ONNX Runtime, torch, Ultralytics) only when it is used.
"""
