"""Vision stages: person detection, face detection, enhancement, embedding, matching."""
