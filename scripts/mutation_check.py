"""The suite's mutation check: each mutation in scripts/mutations.json breaks one rule of the code; the tests named
beside it must fail while it is in place.

    python3 scripts/mutation_check.py [ID ...]        (from the repository root; default: every mutation)

Each mutation names its file, the one place `old` in it, what replaces it (`new`) and its `tests`: pytest's arguments
for a Python file (run with .venv's Python), a `swift test --filter` pattern for a Swift one (the package is built
first; a mutation that does not build is reported as such, not as caught). The file must have no uncommitted change
(else the check stops, naming it, before touching anything); its text is put back as it was, also on failure or
Ctrl-C. One line each: `caught` (the tests failed) or `SURVIVED` (they passed: a test is missing), the seconds, and
the first failure the tests printed (else their last line); the whole output goes to `.build/mutations/ID.log`.
Exit 1 when a mutation survived, did not build or no longer matches its file, 64 for an unknown id or a file that
is not clean. Mutations marked `equivalent` (a change no behaviour can show) are listed and not run.

The README's test command does not run this (each mutation rebuilds and runs its tests: about 20 minutes for
all); it is how the suite's strength is shown in a closing note."""
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "scripts" / "mutations.json"


def commands(mutation: dict) -> tuple[str, str]:
    """The build (`true` for Python: nothing to build) and test commands of a mutation, by its file's language."""
    if mutation["file"].endswith(".swift"):
        return "swift build --build-tests", f"swift test --skip-build --filter '{mutation['tests']}'"
    return "true", f".venv/bin/python -m pytest -q -x {mutation['tests']}"


def main(ids: list[str]) -> int:
    mutations = json.loads(SPEC.read_text())
    unknown = set(ids) - {m["id"] for m in mutations}
    if unknown:
        print(f"mutation_check: no mutation {', '.join(sorted(unknown))} in {SPEC.name}; "
              f"ids: {', '.join(m['id'] for m in mutations)}", file=sys.stderr)
        return 64
    chosen = [m for m in mutations if not ids or m["id"] in ids]
    for mutation in chosen:
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", mutation["file"]], cwd=ROOT).returncode
        if dirty:
            print(f"mutation_check: {mutation['file']} has uncommitted changes; commit or stash them first",
                  file=sys.stderr)
            return 64
    logs = ROOT / ".build" / "mutations"
    logs.mkdir(parents=True, exist_ok=True)
    failures = 0
    for mutation in chosen:
        if "equivalent" in mutation:
            print(f"{mutation['id']}\tequivalent\t{mutation['equivalent']}", flush=True)
            continue
        path = ROOT / mutation["file"]
        original = path.read_text()
        occurrences = original.count(mutation["old"])
        if occurrences != 1:
            print(f"{mutation['id']}\tstale\t'old' occurs {occurrences} times in {mutation['file']}, not once: "
                  f"mend the mutation", flush=True)
            failures += 1
            continue
        build, test = commands(mutation)
        started = time.monotonic()
        try:
            path.write_text(original.replace(mutation["old"], mutation["new"]))
            built = subprocess.run(build, shell=True, cwd=ROOT, capture_output=True, text=True)
            done = (subprocess.run(test, shell=True, cwd=ROOT, capture_output=True, text=True)
                    if built.returncode == 0 else None)
        finally:
            path.write_text(original)
        output = built.stdout + built.stderr + (done.stdout + done.stderr if done else "")
        (logs / f"{mutation['id']}.log").write_text(output)
        verdict = "does-not-build" if done is None else "caught" if done.returncode != 0 else "SURVIVED"
        failures += verdict != "caught"
        lines = output.strip().splitlines() or [""]
        shown = next((line for line in lines if "✘ Test" in line or "AssertionError" in line or " FAILED" in line),
                     lines[-1])
        print(f"{mutation['id']}\t{verdict}\t{time.monotonic() - started:.0f} s\t{shown[:160]}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
