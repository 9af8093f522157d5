"""The seed's YOLO example done right: an actor loads the model once and is then called per image, each image
put on the cluster once and passed by reference.

    model = try await gateway.put(Data(contentsOf: modelURL))
    detector = try await gateway.actor("yolo:Detector", model, resources: .gpus(1))
    boxes: [Box] = try await detector.call("detect", try await gateway.put(image))
"""
import io
import os
import tempfile


class Detector:
    def __init__(self, model: bytes | str, conf: float = 0.25):
        """`model`: the weights' bytes (a put ref resolves to them), or a name/path Ultralytics loads."""
        from ultralytics import YOLO

        if isinstance(model, bytes):
            handle, path = tempfile.mkstemp(suffix=".pt")
            with os.fdopen(handle, "wb") as file:
                file.write(model)
            model = path
        self.model = YOLO(model)
        self.conf = conf

    def detect(self, image: bytes) -> list[dict]:
        """Boxes in one encoded image: [{"box": [x1, y1, x2, y2], "score", "class_id", "class_name"}]."""
        from PIL import Image

        result = self.model.predict(Image.open(io.BytesIO(image)).convert("RGB"), conf=self.conf, verbose=False)[0]
        return [{"box": [round(float(v), 2) for v in box.xyxy[0].tolist()], "score": round(float(box.conf), 4),
                 "class_id": int(box.cls), "class_name": result.names[int(box.cls)]} for box in result.boxes]
