#!/usr/bin/env bash
# insightface and ultralytics each depend on a different OpenCV wheel, and all of them write
# the same cv2/ folder. Keep exactly one: opencv-contrib-python-headless 4.x (dnn_superres works,
# no GUI libs needed on a server). Then prove it.
set -euo pipefail
PY=${1:-python}
$PY -m pip uninstall -y -q opencv-python opencv-python-headless opencv-contrib-python opencv-contrib-python-headless >/dev/null 2>&1 || true
$PY -m pip install -q --no-deps "opencv-contrib-python-headless>=4.10,<5"
$PY - <<'PY'
import importlib.metadata as md, cv2
dists = sorted({d.metadata["Name"].lower() for d in md.distributions() if d.metadata["Name"] and d.metadata["Name"].lower().startswith("opencv")})
assert dists == ["opencv-contrib-python-headless"], f"expected exactly one OpenCV, found {dists}"
assert cv2.__version__.startswith("4."), cv2.__version__
assert hasattr(cv2, "dnn_superres"), "cv2.dnn_superres missing (need contrib build)"
print(f"OpenCV OK: {dists[0]} {cv2.__version__}")
PY
