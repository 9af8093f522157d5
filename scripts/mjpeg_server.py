#!/usr/bin/env python3
"""A live MJPEG stream over HTTP, as IP cameras serve them, for the video sessions' tests.

    python scripts/mjpeg_server.py --port 8090 --fps 15 --frames loop generate
    python scripts/mjpeg_server.py --port 0 --video clip.mp4 --frames 300

GET /stream answers `multipart/x-mixed-replace; boundary=frame`: one JPEG part per frame, sent in real time
(--fps a second), each client from the first frame. The frames come from --video FILE (a video file; at its
end it starts again) or are generated: scripts/make_shapes_video.py's moving shapes (--width, --height,
--seed). --frames N ends each client's response after N frames (the server goes on: a camera that drops its
clients); `loop` (the default) never ends it. Any other path is 404.

Prints `listening on http://127.0.0.1:PORT/stream` (flushed) once it accepts connections, PORT being the
one it got (--port 0: a free one), and serves until killed. Standard library, OpenCV and NumPy only.
"""
from __future__ import annotations

import argparse
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

BOUNDARY = "frame"


def video_frames(path: str) -> Iterator[np.ndarray]:
    """The file's frames, again and again."""
    while True:
        capture = cv2.VideoCapture(path)
        if not capture.isOpened():
            raise SystemExit(f"error: cannot open {path}")
        count = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            count += 1
            yield frame
        capture.release()
        if count == 0:
            raise SystemExit(f"error: {path} has no frames")


def generated_frames(width: int, height: int, seed: int) -> Iterator[np.ndarray]:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from make_shapes_video import generate_frames

    for image, _objects in generate_frames(width, height, seed):
        yield image


def make_handler(args: argparse.Namespace) -> type[BaseHTTPRequestHandler]:
    limit = None if args.frames == "loop" else int(args.frames)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # the response ends when the connection closes, as cameras do

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path.split("?")[0] != "/stream":
                self.send_error(404, "the stream is at /stream")
                return
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            frames = video_frames(args.video) if args.video else generated_frames(args.width, args.height, args.seed)
            start = time.monotonic()
            sent = 0
            try:
                for frame in frames:
                    if limit is not None and sent >= limit:
                        break
                    ok, jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, args.quality])
                    if not ok:
                        continue
                    data = jpeg.tobytes()
                    self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n"
                                     .encode() + data + b"\r\n")
                    self.wfile.flush()
                    sent += 1
                    delay = start + sent / args.fps - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client went away

        def log_message(self, format: str, *values) -> None:  # noqa: A002 - http.server's signature
            pass  # quiet: the tests read stdout for the "listening" line only

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8090, help="0: any free port (printed)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--fps", type=float, default=15.0)
    parser.add_argument("--frames", default="loop", help="frames per client before the response ends, or 'loop'")
    parser.add_argument("--video", help="serve this video file's frames (looped)")
    parser.add_argument("source", nargs="?", choices=["generate"], default="generate",
                        help="without --video: generated moving shapes (the default)")
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality (default 90)")
    args = parser.parse_args()
    if args.fps <= 0:
        parser.error("--fps must be positive")
    if args.frames != "loop" and not (args.frames.isdigit() and int(args.frames) > 0):
        parser.error(f"--frames must be a positive number or 'loop', not {args.frames!r}")
    if args.video and not Path(args.video).is_file():
        parser.error(f"--video {args.video}: no such file")
    server = ThreadingHTTPServer((args.host, args.port), make_handler(args))
    server.daemon_threads = True
    host, port = server.server_address[:2]
    print(f"listening on http://{host}:{port}/stream", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
