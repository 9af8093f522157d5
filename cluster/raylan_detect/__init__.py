"""RayLAN's detection service: YOLO on Ray Serve, deployed by `raylan serve deploy`."""
import os

# Replicas must not pip-install packages at run time (Ultralytics' AutoUpdate); named models still download.
os.environ.setdefault("YOLO_AUTOINSTALL", "false")
