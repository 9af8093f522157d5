#!/usr/bin/env python3
"""Looks at a page in headless Chromium, for the view's tests (and the README's screenshots).

  browser_check.py dom URL      prints JSON: the page's figures, boxes, loaded pictures, and its console lines
  browser_check.py shot URL PNG writes a screenshot (1280×900)
  browser_check.py status URL   prints JSON: the HTTP status of a GET (no browser)

Each call runs Chromium once, with a profile of its own that is removed afterwards. Standard library only.
"""
import html.parser
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
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


def status(url: str) -> dict:
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            return {"status": answer.status}
    except urllib.error.HTTPError as error:
        return {"status": error.code}


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 2 else ""
    if command == "dom":
        print(json.dumps(dom(sys.argv[2])))
    elif command == "shot" and len(sys.argv) > 3:
        print(json.dumps(shot(sys.argv[2], sys.argv[3])))
    elif command == "status":
        print(json.dumps(status(sys.argv[2])))
    else:
        sys.exit(__doc__)
