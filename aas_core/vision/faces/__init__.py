"""Face detectors (boxes + 5 InsightFace-order landmarks) and the two face-finding flows.

Backends: SCRFD (InsightFace), YuNet (OpenCV), dlib HOG, dlib CNN — one module each, picked
via ``aas_core.vision.backends``. Flows (``faces.flows``): faces inside person boxes, or
SAHI-style tiling of the whole frame.
"""
