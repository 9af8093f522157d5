#!/usr/bin/env python3
"""Looks at a page in headless Chromium, for the view's tests (and the README's screenshots).

  browser_check.py dom URL      prints JSON: the page's figures, boxes, loaded pictures, and its console lines
  browser_check.py shot URL PNG writes a screenshot (1280×900)
  browser_check.py live URL DIR prints JSON: the live page looked at twice, 2 s apart (its picture's frame, boxes,
                                chart points, and whether a screenshot of the picture differs); a screenshot of the
                                page goes to DIR/view-live.png
  browser_check.py get URL      prints JSON: the HTTP status of a GET and its body's JSON (no browser)

`live` drives Chromium over the DevTools protocol (a page that streams never "finishes loading", which --dump-dom
waits for): it needs the websockets package (in the cluster side's .venv, with Ray Serve).

Each call runs Chromium once, with a profile of its own that is removed afterwards.
"""
import base64
import html.parser
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

SIZE = "1280,900"


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    sys.exit("no Chromium here: install it (apt-get install chromium)")


def run(url: str, *flags: str) -> subprocess.CompletedProcess:
    profile = tempfile.mkdtemp(prefix="raylan-chromium-")
    try:
        return subprocess.run(
            [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             f"--window-size={SIZE}", f"--user-data-dir={profile}", "--no-first-run",
             "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000", *flags, url],
            capture_output=True, text=True, timeout=120)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


class Figures(html.parser.HTMLParser):
    """The gallery's figures as the page left them: shown or hidden, their boxes' classes, a loaded picture."""

    def __init__(self):
        super().__init__()
        self.figures = []
        self.depth = 0  # inside a figure: its element depth

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "figure":
            self.figures.append({"hidden": "hidden" in attrs, "classes": [], "loaded": False,
                                 "visible_boxes": int(attrs.get("data-visible-boxes", "0"))})
        elif self.figures and tag == "rect":
            self.figures[-1]["classes"].append(attrs.get("data-class"))
        elif self.figures and tag == "img" and attrs.get("data-loaded") == "1":
            self.figures[-1]["loaded"] = True


def dom(url: str) -> dict:
    result = run(url, "--dump-dom")
    parser = Figures()
    parser.feed(result.stdout)
    console = [line for line in result.stderr.splitlines() if re.search(r":CONSOLE[:(]", line)]
    return {"figures": parser.figures, "console": console, "status": result.returncode,
            "stats": re.findall(r'<span id="stats">([^<]*)</span>', result.stdout)}


def shot(url: str, path: str) -> dict:
    path = os.path.abspath(path)
    result = run(url, f"--screenshot={path}")
    return {"status": result.returncode, "written": os.path.exists(path)}


class DevTools:
    """One headless Chromium driven over the DevTools protocol: one page, its console and exceptions recorded."""

    def __init__(self):
        from websockets.sync.client import connect

        self.profile = tempfile.mkdtemp(prefix="raylan-chromium-")
        self.process = subprocess.Popen(
            [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             f"--window-size={SIZE}", f"--user-data-dir={self.profile}", "--no-first-run",
             "--remote-debugging-port=0", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        address = None
        for line in self.process.stderr:
            found = re.search(r"DevTools listening on (ws://\S+)", line)
            if found:
                address = found.group(1)
                break
        if address is None:
            self.close()
            sys.exit("Chromium did not open its DevTools port")
        self.connection = connect(address, max_size=64 << 20)
        self.socket = self.connection.__enter__()
        self.next_id = 0
        self.console: list[str] = []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable", session=True)
        width, height = (int(v) for v in SIZE.split(","))
        self.call("Emulation.setDeviceMetricsOverride", session=True, width=width, height=height,
                  deviceScaleFactor=1, mobile=False)

    def call(self, method: str, session: bool = False, **params) -> dict:
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        self.socket.send(json.dumps(message))
        while True:
            answer = json.loads(self.socket.recv(timeout=60))
            self.note(answer)
            if answer.get("id") == self.next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})

    def note(self, event: dict) -> None:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled":
            self.console.append(f"console.{params.get('type')}: "
                                + " ".join(str(arg.get("value", arg.get("description"))) for arg in params["args"]))
        elif method == "Runtime.exceptionThrown":
            self.console.append(f"exception: {params['exceptionDetails'].get('text')}")
        elif method == "Log.entryAdded" and params["entry"].get("level") in ("error", "warning"):
            self.console.append(f"log.{params['entry']['level']}: {params['entry'].get('text')}")

    def wait(self, seconds: float) -> None:
        """Lets the page run, recording what it logs meanwhile."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                self.note(json.loads(self.socket.recv(timeout=left)))
            except TimeoutError:
                return

    def evaluate(self, expression: str):
        answer = self.call("Runtime.evaluate", session=True, expression=expression, returnByValue=True)
        return answer["result"].get("value")

    def screenshot(self, clip: dict | None = None) -> bytes:
        params = {"format": "png"}
        if clip:
            params["clip"] = {**clip, "scale": 1}
        return base64.b64decode(self.call("Page.captureScreenshot", session=True, **params)["data"])

    def close(self) -> None:
        if hasattr(self, "connection"):
            self.connection.__exit__(None, None, None)
        self.process.kill()
        self.process.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


# What the live page shows: the first source's picture (its frame, its rectangle on the page), its boxes'
# classes, and the chart's points per class.
LIVE_STATE = """(() => {
  const picture = document.querySelector("section.source .live-frame");
  const rect = picture ? picture.getBoundingClientRect() : null;
  return {
    frame: picture && picture.dataset.frame !== undefined ? Number(picture.dataset.frame) : null,
    picture: rect ? {x: rect.x, y: rect.y, width: rect.width, height: rect.height} : null,
    loaded: !!(picture && picture.querySelector("img") && picture.querySelector("img").complete),
    boxes: [...document.querySelectorAll("section.source .live-frame rect")].map((r) => r.dataset.class),
    chart: Object.fromEntries([...document.querySelectorAll("section.source svg.chart polyline")]
      .map((line) => [line.dataset.class, Number(line.dataset.points)])),
    connection: document.getElementById("connection").textContent,
  };
})()"""


def live(url: str, folder: str) -> dict:
    browser = DevTools()
    try:
        browser.call("Page.navigate", session=True, url=url)
        looks, shots = [], []
        for _ in range(2):
            browser.wait(2.0)
            state = browser.evaluate(LIVE_STATE)
            looks.append(state)
            shots.append(browser.screenshot(state["picture"]) if state["picture"] else b"")
        path = os.path.join(os.path.abspath(folder), "view-live.png")
        with open(path, "wb") as file:
            file.write(browser.screenshot())
        return {"looks": looks, "picture_differs": bool(shots[0]) and shots[0] != shots[1],
                "console": browser.console, "written": path}
    finally:
        browser.close()


def get(url: str) -> dict:
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            body = answer.read()
            return {"status": answer.status,
                    "body": json.loads(body) if answer.headers.get_content_type() == "application/json" else None}
    except urllib.error.HTTPError as error:
        return {"status": error.code, "body": None}


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 2 else ""
    if command == "dom":
        print(json.dumps(dom(sys.argv[2])))
    elif command == "shot" and len(sys.argv) > 3:
        print(json.dumps(shot(sys.argv[2], sys.argv[3])))
    elif command == "live" and len(sys.argv) > 3:
        print(json.dumps(live(sys.argv[2], sys.argv[3])))
    elif command == "get":
        print(json.dumps(get(sys.argv[2])))
    else:
        sys.exit(__doc__)
