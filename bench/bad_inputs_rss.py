"""Peak memory of a replica-like process under the bad-input corpus of issue 10.

For each case, a fresh server process (the real Detector app and the shipped model on CPU, served by
uvicorn without Ray: Serve's replica context is stood in for) is warmed up with one valid image; the
case's request is sent over HTTP from this process; the server's peak RSS (VmHWM in /proc/<pid>/status)
is read before and after. One process per case, because the peak only ever rises.

    .venv/bin/python bench/bad_inputs_rss.py                      # this checkout's cluster/
    .venv/bin/python bench/bad_inputs_rss.py --cluster /tmp/old   # another copy of raylan_detect's parent
"""
import argparse
import http.client
import json
import socket
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "shapes" / "shapes-yolo11n.pt"
SAMPLE = (ROOT / "samples" / "shapes_00.jpg").read_bytes()

SERVER = r'''
import inspect, sys
from types import SimpleNamespace
import uvicorn, ray.serve
sys.path.insert(0, sys.argv[1])
import raylan_detect.app as app
wrapper = app.Detector.func_or_class
cls = wrapper.__bases__[0]
instance = cls.__new__(cls)
ray.serve.get_replica_context = lambda: SimpleNamespace(
    servable_object=instance, _deployment_config=SimpleNamespace(max_ongoing_requests=5))
extra = {k: v for k, v in eval(sys.argv[4]).items() if k in inspect.signature(cls.__init__).parameters}
cls.__init__(instance, model=sys.argv[2], device="cpu", **extra)
uvicorn.run(app.api, host="127.0.0.1", port=int(sys.argv[3]), log_level="warning")
'''


def frames(*images: bytes) -> bytes:
    return b"".join(len(image).to_bytes(4, "big") + image for image in images)


def bomb_png(side: int = 7071) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    row = b"\0" * (1 + (side + 7) // 8)
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def chunked(total: int, piece: int = 1 << 20):
    sent = 0
    while sent < total:
        yield b"\0" * min(piece, total - sent)
        sent += piece


BOMB = bomb_png()
#: name, path, body (bytes, or a generator for a chunked body), extra Detector args
CASES = [
    ("bomb PNG 7071² 1-bit (6 KB), defaults", "/detect", BOMB, {}),
    ("bomb PNG, max_decoded_bytes=128 MiB", "/detect", BOMB, {"max_decoded_bytes": 128 * 2**20}),
    ("100,000 zero-length frames", "/detect/batch", b"\0\0\0\0" * 100_000, {}),
    ("300 frames (1280×720 JPEG)", "/detect/batch", frames(*[SAMPLE] * 300), {}),
    ("body 100 MiB, Content-Length", "/detect", b"\xff\xd8\xff" + b"\0" * (100 * 2**20 - 3), {}),
    ("body 100 MiB, chunked", "/detect", "chunked", {}),
    ("lying frame length (2³²−1)", "/detect/batch", frames(SAMPLE) + b"\xff\xff\xff\xff" + b"\0" * 16, {}),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def post(port: int, path: str, body, timeout: float = 300) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        if body == "chunked":
            connection.request("POST", path, body=chunked(100 * 2**20), encode_chunked=True,
                               headers={"Transfer-Encoding": "chunked"})
        else:
            connection.request("POST", path, body=body)
        response = connection.getresponse()
        data = response.read()
    except (BrokenPipeError, ConnectionResetError) as error:  # the server answered and closed early
        return 0, type(error).__name__
    finally:
        connection.close()
    try:
        payload = json.loads(data)
        code = payload.get("error", {}).get("code") or (
            ",".join(sorted({r.get("error", {}).get("code", "ok") for r in payload["results"]}))
            if "results" in payload else "ok")
    except ValueError:
        code = data[:60].decode(errors="replace")
    return response.status, code


def run_case(cluster: str, name: str, path: str, body, extra: dict) -> dict:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, cluster, str(MODEL), str(port), repr(extra)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(600):
            try:
                status, _ = post(port, "/detect", SAMPLE, timeout=60)
                if status == 200:
                    break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError(server.stderr.read().decode()[-2000:])
        before = peak_rss_mib(server.pid)
        start = time.perf_counter()
        status, code = post(port, path, body)
        seconds = time.perf_counter() - start
        after = peak_rss_mib(server.pid)
        return {"case": name, "status": status, "code": code, "seconds": round(seconds, 2),
                "peak_rss_before_mib": round(before), "peak_rss_after_mib": round(after),
                "growth_mib": round(after - before)}
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cluster", default=str(ROOT / "cluster"), help="the folder holding raylan_detect")
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args()
    rows = [run_case(args.cluster, *case) for case in CASES]
    print(f"{'case':42} {'answer':32} {'s':>6} {'peak before':>12} {'after':>7} {'growth':>7}")
    for row in rows:
        print(f"{row['case']:42} {str(row['status']) + ' ' + row['code']:32} {row['seconds']:6.2f} "
              f"{row['peak_rss_before_mib']:9d} MiB {row['peak_rss_after_mib']:7d} {row['growth_mib']:7d}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
