"""Detection over images that already sit on the cluster's disks, with Ray Data (`raylan detect --on-cluster`).

RayLAN's gateway hosts a DatasetSession as an actor (`raylan_detect.dataset:DatasetSession`) in RayLAN's
uploaded working directory, and the client follows it by polling (session.py). Its work, in order:

  checking   the inputs (files, folders searched recursively for .jpg .jpeg .png .webp .bmp, globs) are
             expanded on every alive node that can read them, by a small task pinned to each node: the
             files must be the same on all of them (a shared mount at the same path, or a copy on each),
             since Ray Data reads a file wherever it has a free CPU. The model must be on every node that
             can host a detector (a relative path is read from each node's working directory: Ray Data's
             workers inherit the session's runtime environment, so RayLAN's models/<file> is there).
  detecting  Ray Data: the paths (from_items) → a read task per block of files (a file that cannot be read
             is that file's error) → map_batches with an actor pool, each actor loading the model once (on a
             GPU where the cluster has them) with the Serve replica's own model layer (models.Runner) and
             its decoding, so that results are the service's. The session streams the results: one line per
             file to out_dir/detections.jsonl, the same line to the client, annotated JPEGs to
             out_dir/annotated/, progress as it goes, and a summary at the end.

Journal lines (out_dir/detections.jsonl; the client gets each with "type": "image" added): a streamed run's
record (contract.detection_record, Swift's DetectionRecord), so that every mode's journal reads the same:
  {"path", "result": {"model", "image": {"width", "height", "format"}, "detections": [{"box", "score",
   "class_id", "class_name"}], "batch_size", "timings_ms"}, "run": {"model": {"id", "backend"}, "conf", "iou",
   "classes", "imgsz", "max_side"}, "node"(, "annotated": "annotated/<name>.jpg")}
  {"path", "error": {"code", "message"}, "run", "node"}
  error codes: read_failed and too_large (the file), the service's empty, unsupported_format, decode_failed,
  too_large (the image), inference_failed.
  {"type": "abandoned", "lease_s", "idle_s", "at"}: the last line when the client made no call for lease_s seconds
  (a spec field, default 120) and the session stopped itself (session.py's lease: its Ray Data execution and
  detectors end with it; state abandoned, error client_gone). It has no "path": a resume passes over it.
Then the client gets {"type": "summary", "inputs", "succeeded", "failed", "skipped", "seconds", "images_per_s",
"nodes": {ip: count}, "backend", "backend_reason", "cpus_per_actor", "gpus_per_actor" (as asked, or as
chosen: see plan_nodes), "stopped"} (also written to out_dir/summary.json); succeeded and failed count every
input's line, a resumed journal's kept ones included, as a streamed run counts them.
Progress (poll's progress): {"phase": "checking", "nodes_checked", "nodes_to_check"(, "waiting": why, while busy
CPUs/GPUs are awaited)}, then {"phase": "detecting", "total" (every input), "done" (answered + skipped), "failed",
"skipped", "images_per_s" (since the first answers: the detectors' start is not in it), "eta_s", "nodes": {ip: n}}.
Host the session with no CPU of its own (the gateway's resources {"cpus": 0}): it only waits on Ray Data, and a CPU
it held would be one the detectors lack (on a small cluster the work would wait for it: no_free_cpu).
Session errors (poll's error.code): no_inputs, path_not_on_every_node, model_not_on_every_node, no_node_fits,
no_free_gpu, no_free_cpu, listing_failed, listing_timed_out, detection_failed (a detector could not start...).
"""
from __future__ import annotations

import glob
import hashlib
import json
import math
import os
import re
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, NamedTuple

import numpy as np

from raylan_common import contract

from .backend import Options
from .codec import DEFAULT_MAX_DECODED_BYTES, DEFAULT_MAX_PIXELS, ImageError, configure_pil
from .session import DEFAULT_LEASE_S, Session, SessionError, check_lease, write_line

#: What a folder search picks (lower-cased suffixes). Named files are taken whatever their suffix.
IMAGE_SUFFIXES = contract.IMAGE_SUFFIXES
JOURNAL = "detections.jsonl"
SUMMARY = "summary.json"
ANNOTATED = "annotated"
#: The largest file read, as the service's largest request body: a bigger one is that file's error.
MAX_FILE_BYTES = 64 * 1024 * 1024
#: CPUs a read task takes: reading is I/O, so several run beside a detector. A node with fewer CPUs than this
#: never reads, and is not checked for the files.
READ_CPUS = 0.25
#: CPUs per detector when none is asked for: 1 where that many are free beside a read, else what is free beside
#: one (a 2-CPU cluster whose detection service holds one CPU: 0.75), down to AUTO_MIN_CPUS.
AUTO_CPUS = 1.0
AUTO_MIN_CPUS = 0.25
#: Read tasks at once, per node that reads (or per detector, where there are more detectors).
READS_PER_NODE = 2
#: How long the session waits for busy CPUs or GPUs to come free before it fails (no_free_cpu, no_free_gpu).
RESOURCE_WAIT_S = 30.0
#: How long the listing on one node may take before the session gives up on it (a hung mount).
LIST_TIMEOUT_S = 600.0
#: The most Ray Data blocks the paths are cut into (each block is one read task).
MAX_BLOCKS = 10_000
#: Seconds a pool of a given size (`actors`) has for all its detectors to start before detection fails.
ACTORS_START_S = 300
#: Missing files named in a path_not_on_every_node message.
SHOWN_MISSING = 1
REMEDY_NOT_EVERYWHERE = ("Put the data on a mount every node has at the same path (NFS/SMB), copy it to every node, "
                         "or use a path that every node sees (Ray Data reads each file on whichever node is free).")


# ---------------------------------------------------------------------------------------------- inputs
def has_magic(pattern: str) -> bool:
    return glob.has_magic(pattern)


def walk_images(folder: str) -> list[str]:
    """The images under a folder, recursively, sorted; hidden files and folders (".DS_Store", "._x.jpg" that
    macOS leaves on SMB shares) left out. Symlinked folders are followed, each folder once (a link loop ends), as
    the Swift client walks a folder it streams."""
    found = []
    visited: set[tuple[int, int]] = set()
    for root, folders, files in os.walk(folder, followlinks=True):
        try:
            info = os.stat(root)
        except OSError:
            info = None
        if info is not None and (info.st_dev, info.st_ino) in visited:
            folders[:] = []
            continue
        if info is not None:
            visited.add((info.st_dev, info.st_ino))
        folders[:] = sorted(name for name in folders if not name.startswith("."))
        found.extend(os.path.join(root, name) for name in sorted(files)
                     if not name.startswith(".") and name.lower().endswith(IMAGE_SUFFIXES))
    return found


def repeats(matches: list[list[str]]) -> dict[str, str]:
    """The paths, over every pattern's files in order, that name a file an earlier path named (two spellings, a
    symlink or a hard link: the same device and inode), each with that first path. The run detects each file
    once, under its first path, as the Swift client's DetectionInput.expand does."""
    first: dict[tuple[int, int], str] = {}
    out: dict[str, str] = {}
    for files in matches:
        for path in files:
            try:
                info = os.stat(path)
            except OSError:
                continue
            key = (info.st_dev, info.st_ino)
            if key in first and first[key] != path:
                out[path] = first[key]
            first.setdefault(key, path)
    return out


def expand(pattern: str) -> list[str]:
    """The files one input names on this node: a file as it is (any suffix), a folder's images, a glob's
    matching images and the images of its matching folders (`**` reaches into subfolders)."""
    path = os.path.expanduser(pattern)
    if has_magic(path):
        out = []
        for match in sorted(glob.glob(path, recursive=True)):
            if os.path.isdir(match):
                out.extend(walk_images(match))
            elif os.path.isfile(match) and match.lower().endswith(IMAGE_SUFFIXES):
                out.append(match)
        return out
    if os.path.isdir(path):
        return walk_images(path)
    if os.path.isfile(path):
        return [path]
    return []


def list_inputs(patterns: list[str], model: str, find_repeats: bool = False) -> dict:
    """Runs on one node: each input's files there, with find_repeats the paths that repeat a file found earlier
    (asked of one node only: every node lists the same paths), and whether the model is there."""
    import ray

    matches = [expand(pattern) for pattern in patterns]
    return {"ip": ray.util.get_node_ip_address(), "matches": matches,
            "repeats": repeats(matches) if find_repeats else {},
            "model": os.path.isfile(os.path.expanduser(model)), "cwd": os.getcwd()}


def node_labels(nodes: list[dict]) -> dict[str, str]:
    """A name per node id for messages: its IP, with the id's start where two nodes share an IP."""
    ips = Counter(node["NodeManagerAddress"] for node in nodes)
    return {node["NodeID"]: node["NodeManagerAddress"] if ips[node["NodeManagerAddress"]] == 1
            else f"{node['NodeManagerAddress']} (node {node['NodeID'][:8]})" for node in nodes}


def join_nodes(labels: Iterable[str]) -> str:
    return ", ".join(labels)


def compare_listings(patterns: list[str], listings: dict[str, list[list[str]]]) -> list[str]:
    """The files to detect on, from each node's listing ({node label: [files of each pattern]}, the reference
    node first, e.g. the session's own): the union in the reference's order, each file once. Raises
    SessionError no_inputs when a pattern matches nothing on any node, path_not_on_every_node when a pattern
    matches nothing on some node or a file is on some nodes but not on others."""
    labels = list(listings)
    nothing = [pattern for index, pattern in enumerate(patterns)
               if not any(listings[label][index] for label in labels)]
    if nothing:
        where = "the node" if len(labels) == 1 else f"any of the {len(labels)} nodes"
        shown = ", ".join(nothing[:3]) + (f" (and {len(nothing) - 3} more)" if len(nothing) > 3 else "")
        raise SessionError("no_inputs", f"nothing matches {shown} on {where} ({join_nodes(labels)})",
                           remedy=("Give paths as the cluster's nodes see them (absolute, or relative to RayLAN's "
                                   "working directory): files, folders (searched for .jpg .jpeg .png .webp .bmp) "
                                   "or globs."))
    for index, pattern in enumerate(patterns):
        empty = [label for label in labels if not listings[label][index]]
        if empty:
            having = [label for label in labels if listings[label][index]]
            count = len(listings[having[0]][index])
            raise SessionError("path_not_on_every_node", (
                f"{pattern} is on {join_nodes(having)} ({count} file{'s' * (count != 1)}) but not on "
                f"{join_nodes(empty)}"), remedy=REMEDY_NOT_EVERYWHERE)
    seen: dict[str, None] = {}
    for label in labels:
        for files in listings[label]:
            for path in files:
                seen.setdefault(path, None)
    files = list(seen)
    sets = {label: {path for matched in listings[label] for path in matched} for label in labels}
    missing = [(path, [label for label in labels if path not in sets[label]]) for path in files]
    missing = [(path, absent) for path, absent in missing if absent]
    if missing:
        path, absent = missing[0]
        more = f" ({len(missing) - 1} more file{'s' * (len(missing) != 2)} missing somewhere)" if len(missing) > 1 else ""
        raise SessionError("path_not_on_every_node", (
            f"{path} is on {join_nodes(label for label in labels if label not in absent)} but not on "
            f"{join_nodes(absent)}{more}"), remedy=REMEDY_NOT_EVERYWHERE)
    return files


def resources(node: dict) -> dict:
    return node.get("Resources") or {}


class Plan(NamedTuple):
    """Where an on-cluster run works: see plan_nodes."""
    #: The nodes that read files (a CPU share each).
    readers: list[dict]
    #: The nodes that can host a detector.
    hosts: list[dict]
    #: GPUs and CPUs per detector.
    gpus: float
    cpus: float
    #: Detectors: a pool of this many (--actors), else one that grows from 1 to this many.
    size: int


def free_of(free: dict[str, dict], node: dict, kind: str) -> float:
    """A node's free `kind` (CPU, GPU) in `free` (node id → its free resources); 0 where it is not listed."""
    return free.get(node["NodeID"], {}).get(kind, 0)


def hundredths(value: float) -> int:
    return math.floor(value * 100 + 1e-6)


def room(free: dict[str, dict], hosts: list[dict], readers: list[dict], cpus: float, gpus: float,
         per_node: int | None = None) -> int:
    """How many detectors of `cpus` and `gpus` the hosts' free resources hold beside one read on one of the readers
    (free: node id → its free resources), at most `per_node` on a node; 0 where no reader has room for a read.
    Counted per node, in hundredths: a detector never spans two nodes."""
    need_cpu, need_gpu, read = hundredths(cpus), hundredths(gpus), hundredths(READ_CPUS)

    def held(cpu: int, gpu: int) -> int:
        counts = [cpu // need_cpu if need_cpu else None, gpu // need_gpu if need_gpu else None, per_node]
        counts = [count for count in counts if count is not None]
        return min(counts) if counts else 1_000_000

    best = 0
    for reader in readers:
        if hundredths(free_of(free, reader, "CPU")) < read:
            continue
        total = 0
        for host in hosts:
            cpu = hundredths(free_of(free, host, "CPU")) - (read if host["NodeID"] == reader["NodeID"] else 0)
            total += held(max(0, cpu), hundredths(free_of(free, host, "GPU")))
        best = max(best, total)
    return best


def plan_nodes(alive: list[dict], free: dict[str, dict], gpus_per_actor: float | None,
               cpus_per_actor: float | None, actors: int | None) -> Plan:
    """From the alive nodes (ray.nodes()) and each node's free resources (node id → resources): the nodes that
    read files (a CPU share), the nodes that can host a detector, the GPUs per detector (auto: 1 where the cluster
    has GPUs, else 0), the detectors (`actors`, else auto: as many as the GPUs hold, or one per CPU node, fewer
    where fewer fit) and the CPUs per detector (auto: AUTO_CPUS, or what is free for them beside one read, at
    least AUTO_MIN_CPUS). The detectors and one read must fit at once, each on one node: detectors that filled
    every node would wait for their input forever. Raises SessionError where the work would wait forever:
    no_node_fits (no node could ever run a detector or a read, or the nodes could never hold `actors` detectors
    and a read), no_free_gpu (every GPU held, e.g. by a detection service), no_free_cpu (too few free CPUs)."""
    gpus = gpus_per_actor
    total_gpus = sum(resources(node).get("GPU", 0) for node in alive)
    if gpus is None:
        gpus = 1.0 if total_gpus > 0 else 0.0
    least = AUTO_MIN_CPUS if cpus_per_actor is None else cpus_per_actor
    readers = [node for node in alive if resources(node).get("CPU", 0) >= READ_CPUS]
    hosts = [node for node in alive if resources(node).get("CPU", 0) >= least and resources(node).get("GPU", 0) >= gpus]
    have = "; ".join(f"{node['NodeManagerAddress']}: CPU {resources(node).get('CPU', 0):g}, "
                     f"GPU {resources(node).get('GPU', 0):g}" for node in alive) or "no alive nodes"
    if not readers or not hosts:
        what = (f"{READ_CPUS:g} CPU to read files" if not readers
                else f"{least:g} CPU and {gpus:g} GPU for a detector")
        raise SessionError("no_node_fits", f"no alive node has {what} ({have})",
                           remedy="Add a node that has them, or ask for less (--cpus-per-actor, --gpus-per-actor).")
    totals = {node["NodeID"]: resources(node) for node in alive}
    if actors is not None and room(totals, hosts, readers, least, gpus) < actors:
        raise SessionError("no_node_fits", (
            f"the nodes can never hold {actors} detectors of {least:g} CPU and {gpus:g} GPU and a read of "
            f"{READ_CPUS:g} CPU at once, each on one node ({have})"),
            remedy="Ask for fewer or smaller detectors (--actors, --cpus-per-actor, --gpus-per-actor), or add a node.")
    if gpus > 0 and not any(free_of(free, node, "GPU") >= gpus for node in hosts):
        free_gpus = sum(free_of(free, node, "GPU") for node in alive)
        raise SessionError("no_free_gpu", (
            f"all of the cluster's {total_gpus:g} GPUs are in use ({free_gpus:g} free, a detector needs "
            f"{gpus:g} on one node), so the detectors would wait for one"),
            remedy="Free one (a detection service holds its GPUs: 'raylan serve delete --name NAME'), share it "
                   "(--gpus-per-actor 0.5, with the service deployed at --gpus-per-replica 0.5), or run on CPUs "
                   "(--gpus-per-actor 0).")
    wanted = actors or (max(1, int(sum(resources(node).get("GPU", 0) for node in hosts) // gpus)) if gpus
                        else len(hosts))
    choices = ([cpus_per_actor] if cpus_per_actor is not None else
               [step / 100 for step in range(hundredths(AUTO_CPUS), hundredths(AUTO_MIN_CPUS) - 1, -1)])
    # Not asked for a number of CPU detectors: one per node (each computes on one thread below 2 CPUs).
    per_node = 1 if actors is None and gpus == 0 else None
    rooms = [(cpus, room(free, hosts, readers, cpus, gpus, per_node)) for cpus in choices]
    # The most detectors (up to those wanted; all of them for a pool of a given size), then the most CPUs each.
    size = min(wanted, max(held for _, held in rooms))
    if size >= (wanted if actors is not None else 1):
        cpus = next(cpus for cpus, held in rooms if held >= size)
        return Plan(readers, [node for node in hosts if resources(node).get("CPU", 0) >= cpus], gpus, cpus, size)
    free_cpus = sum(free_of(free, node, "CPU") for node in alive)
    total = sum(resources(node).get("CPU", 0) for node in alive)
    count = actors or 1
    detectors = f"{count} detectors" if count > 1 else "a detector"
    raise SessionError("no_free_cpu", (
        f"the cluster has {free_cpus:g} of its {total:g} CPUs free; {detectors} of {least:g} CPU and a read need "
        f"{count * least + READ_CPUS:g} at once, each on one node, so the work would wait"),
        remedy="Free some (a detection service holds CPUs: 'raylan serve delete --name NAME'), or ask for less "
               "(--actors, --cpus-per-actor 0.5).")


def annotated_names(files: list[str]) -> dict[str, str]:
    """Only for stems that clash (same name in different folders): path → its unique file name under annotated/.
    Other files are <stem>.jpg."""
    stems = Counter(Path(path).stem for path in files)
    return {path: f"{Path(path).stem}-{hashlib.sha1(path.encode()).hexdigest()[:8]}.jpg"
            for path in files if stems[Path(path).stem] > 1}


# ---------------------------------------------------------------------------------------------- Ray Data stages
def read_files(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A block of paths → their bytes (a read task). A file that cannot be read gets its error instead."""
    import ray

    node = ray.util.get_node_ip_address()
    paths = [str(path) for path in batch["path"]]
    data, errors = [], []
    for path in paths:
        try:
            size = os.path.getsize(path)
            if size > MAX_FILE_BYTES:
                raise ImageError("too_large", f"the file is {size / 2**20:.0f} MiB, over the limit of "
                                              f"{MAX_FILE_BYTES / 2**20:.0f} MiB per image")
            with open(path, "rb") as file:
                data.append(file.read())
            errors.append("")
        except ImageError as error:
            data.append(b"")
            errors.append(json.dumps(error.as_dict()))
        except OSError as error:
            data.append(b"")
            errors.append(json.dumps({"code": "read_failed",
                                      "message": f"cannot read the file on {node}: {error.strerror or error}"}))
    return {"path": np.array(paths, dtype=object), "data": np.array(data, dtype=object),
            "read_error": np.array(errors, dtype=object), "read_node": np.array([node] * len(paths), dtype=object)}


class Detector:
    """A Ray Data actor: loads the model once, as a Serve replica does, and answers blocks of files."""

    def __init__(self, model: str, backend: str, imgsz: int | None, conf: float, iou: float,
                 classes: list[int] | None, annotate: bool, device: str | None,
                 max_pixels: int = DEFAULT_MAX_PIXELS, max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES):
        import ray

        from .models import Runner

        configure_pil(max_pixels, max_decoded_bytes)
        # The replica's model layer, the same steps: decode (JPEGs decoded together on a GPU), budget, batch,
        # predict. The decode pool is smaller: actors share their node with Ray Data's read tasks.
        self.runner = Runner.load(backend, model, imgsz=imgsz, device=device, max_pixels=max_pixels,
                                  max_decoded_bytes=max_decoded_bytes,
                                  decode_threads=max(1, min(4, (os.cpu_count() or 2) // 2)))
        self.backend, self.reason = self.runner.backend, self.runner.reason
        self.options = Options(conf=conf, iou=iou, classes=tuple(classes) if classes else None, annotate=annotate)
        self.node = ray.util.get_node_ip_address()
        self.model_id = Path(model).stem

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        count = len(batch["path"])
        nodes = [self.node] * count
        items: list[Any] = []
        for index in range(count):
            if batch["read_error"][index]:
                items.append(ImageError(**json.loads(batch["read_error"][index])))
                nodes[index] = str(batch["read_node"][index])
            else:
                items.append(batch["data"][index])
        return self.rows(batch, self.runner.run(items, self.options), nodes)

    def rows(self, batch: dict[str, np.ndarray], outcomes: list[Any], nodes: list[str]) -> dict[str, np.ndarray]:
        """One row per file: what the session writes. Each result travels as the JSON text of its record's
        `result` (a flat Arrow schema): the detections, the number of images the model predicted together
        (batch_size) and its timings per image."""
        result, error, annotated = [], [], []
        for outcome in outcomes:
            if isinstance(outcome, ImageError):
                result.append("")
                error.append(json.dumps(outcome.as_dict()))
                annotated.append(b"")
            else:
                image, prediction = outcome
                result.append(json.dumps(contract.detection_result(
                    self.model_id, contract.image(image.width, image.height, image.format), prediction.detections,
                    prediction.batch_size, prediction.timings_ms)))
                error.append("")
                annotated.append(prediction.annotated_jpeg or b"")
        count = len(outcomes)
        return {"path": np.array([str(path) for path in batch["path"]], dtype=object),
                "result": np.array(result, dtype=object), "error": np.array(error, dtype=object),
                "annotated": np.array(annotated, dtype=object), "node": np.array(nodes, dtype=object),
                "backend": np.array([self.backend.kind] * count, dtype=object),
                "reason": np.array([self.reason] * count, dtype=object)}


def failure_message(error: BaseException) -> str:
    """Ray Data's failure in one line: the root exception's line from Ray's text (a detector's constructor
    error, e.g. a model that cannot load, comes wrapped in ActorDiedError with its traceback)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    causes = [line for line in lines if re.match(r"^[A-Za-z_][\w.]*(Error|Exception)(:|$)", line)]
    cause = causes[-1] if causes else (lines[0] if lines else "")
    if type(error).__name__ == "ActorDiedError" and "creation task" in text:
        node = re.search(r"ip=([0-9a-fA-F.:]+)", text)
        where = f" on {node.group(1).rstrip(',')}" if node else ""
        return f"a detector could not start{where}: {cause[:400]}"
    return f"Ray Data failed: {type(error).__name__}: {cause[:400]}"


def ray_version() -> tuple[int, int]:
    import ray

    major, minor = ray.__version__.split(".")[:2]
    return int(major), int(minor)


def actor_pool(size: int, fixed: bool = False) -> dict:
    """map_batches' argument for an actor pool of `size` actors (`fixed`), else one that scales from 1 to `size`:
    `compute=ActorPoolStrategy` from Ray 2.51 on (where `concurrency` is deprecated), `concurrency` before (where
    `compute` is the deprecated one, with a warning). Both work on both; this way neither logs a deprecation
    warning."""
    import ray.data

    if ray_version() >= (2, 51):
        if fixed:
            return {"compute": ray.data.ActorPoolStrategy(size=size)}
        return {"compute": ray.data.ActorPoolStrategy(min_size=1, max_size=size)}
    return {"concurrency": size if fixed else (1, size)}


def task_pool(size: int) -> dict:
    """map_batches' argument for at most `size` tasks at once, as actor_pool chooses (Ray 2.45 has no
    ray.data.TaskPoolStrategy; `concurrency=n` is a task pool there)."""
    import ray.data

    if ray_version() >= (2, 51):
        return {"compute": ray.data.TaskPoolStrategy(size=size)}
    return {"concurrency": size}


def whole(value: Any) -> Any:
    """A float with no fraction (JSON's 16.0) as an int; anything else as it is."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


# ---------------------------------------------------------------------------------------------- the session
class DatasetSession(Session):
    """Detection over files on the cluster's disks (see the module's doc)."""

    journal_name = JOURNAL

    def __init__(self, paths: list[str], model: str, out_dir: str | None = None, backend: str = "auto",
                 imgsz: int | None = None, conf: float = 0.25, iou: float = 0.7, classes: list[int] | None = None,
                 annotate: bool = False, resume: bool = False, batch_size: int = 16, actors: int | None = None,
                 gpus_per_actor: float | None = None, cpus_per_actor: float | None = None,
                 lease_s: float = DEFAULT_LEASE_S):
        if isinstance(paths, str) or not isinstance(paths, (list, tuple)) or not paths:
            raise ValueError("paths must be a non-empty list of files, folders or globs")
        if not all(isinstance(path, str) and path.strip() for path in paths):
            raise ValueError("every path must be a non-empty string")
        if not isinstance(model, str) or not model.strip():
            raise ValueError("model must be the path of a model file (.pt or .onnx)")
        if backend not in contract.BACKENDS:
            raise contract.backend_error(backend)
        # Whole numbers may come as JSON's 16.0: taken as 16.
        imgsz, batch_size, actors = whole(imgsz), whole(batch_size), whole(actors)
        classes = [whole(c) for c in classes] if isinstance(classes, (list, tuple)) else classes
        if imgsz is not None and (isinstance(imgsz, bool) or not isinstance(imgsz, int) or imgsz < 32):
            raise ValueError(f"imgsz must be a whole number of pixels, at least 32, not {imgsz!r}")
        for name, value in (("conf", conf), ("iou", iou)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a number from 0 to 1, not {value!r}")
        if classes is not None and (not isinstance(classes, (list, tuple)) or not all(
                isinstance(c, int) and not isinstance(c, bool) and 0 <= c < contract.CLASS_ID_LIMIT for c in classes)):
            raise ValueError(f"classes must be a list of class ids (whole numbers from 0), not {classes!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= 1024:
            raise ValueError(f"batch_size must be from 1 to 1024, not {batch_size!r}")
        if actors is not None and (isinstance(actors, bool) or not isinstance(actors, int) or actors < 1):
            raise ValueError(f"actors must be at least 1, not {actors!r}")
        if gpus_per_actor is not None and (isinstance(gpus_per_actor, bool)
                                           or not isinstance(gpus_per_actor, (int, float)) or gpus_per_actor < 0):
            raise ValueError(f"gpus_per_actor must be a number of GPUs from 0 (0.5 shares one between two), "
                             f"not {gpus_per_actor!r}")
        if cpus_per_actor is not None and (isinstance(cpus_per_actor, bool)
                                           or not isinstance(cpus_per_actor, (int, float)) or cpus_per_actor < 0):
            raise ValueError(f"cpus_per_actor must be a number of CPUs from 0, not {cpus_per_actor!r}")
        check_lease(lease_s)
        super().__init__(out_dir, "dataset", lease_s)
        self.patterns = [str(path) for path in paths]
        self.model = model
        self.model_id = Path(model).stem
        self.backend_kind = backend
        self.imgsz = imgsz
        self.conf, self.iou = float(conf), float(iou)
        self.classes = list(classes) if classes else None
        self.annotate = bool(annotate)
        self.resume = bool(resume)
        self.batch_size = batch_size
        self.actors = actors
        self.gpus_per_actor = gpus_per_actor
        self.cpus_per_actor = float(cpus_per_actor) if cpus_per_actor is not None else None
        #: Each line's `run` (settings()), set when the journal is opened: hashing the model waits until then.
        self.run_settings: dict | None = None

    def describe(self) -> dict:
        return {**super().describe(), "model": self.model_id, "patterns": len(self.patterns)}

    # ------------------------------------------------------------------------------------ checking
    def nodes(self) -> Plan | None:
        """Where the run works: see plan_nodes. Where the CPUs or GPUs are busy, waits up to RESOURCE_WAIT_S for
        them (the actors of a session that just ended take a moment to go) before failing; None when stopped
        meanwhile."""
        import ray
        from ray._private import state

        deadline, waited = time.monotonic() + RESOURCE_WAIT_S, False
        while True:
            try:
                # Each node's free resources (a detector or a read runs on one node): Ray's developer API, in
                # 2.45–2.60 (as raylan_doctor's probe reads it).
                plan = plan_nodes([node for node in ray.nodes() if node.get("Alive")],
                                  state.available_resources_per_node(), self.gpus_per_actor,
                                  self.cpus_per_actor, self.actors)
                if waited:
                    self.set_progress(waiting=None)
                return plan
            except SessionError as busy:
                if busy.code not in ("no_free_gpu", "no_free_cpu") or time.monotonic() > deadline:
                    raise
                self.set_progress(phase="checking", waiting=busy.message)
                waited = True
                if self.stopping.wait(0.5):
                    return None

    def check(self, readers: list[dict], hosts: list[dict]) -> list[str]:
        """Lists the inputs on every node that reads or hosts a detector; the files when all agree."""
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        here = ray.get_runtime_context().get_node_id()
        everyone = {node["NodeID"]: node for node in readers + hosts}
        order = sorted(everyone, key=lambda node_id: (node_id != here, everyone[node_id]["NodeManagerAddress"]))
        labels = node_labels([everyone[node_id] for node_id in order])
        lister = ray.remote(list_inputs)
        reader_ids = {node["NodeID"] for node in readers}
        # The first reader's view decides which paths repeat a file (every node lists the same paths).
        reference = next((node_id for node_id in order if node_id in reader_ids), None)
        pending = {lister.options(num_cpus=0, max_retries=0, scheduling_strategy=NodeAffinitySchedulingStrategy(
            node_id, soft=False)).remote(self.patterns, self.model, node_id == reference): node_id
            for node_id in order}
        answers: dict[str, dict] = {}
        deadline = time.monotonic() + LIST_TIMEOUT_S
        while pending and not self.stopping.is_set():
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
            for ref in ready:
                node_id = pending.pop(ref)
                try:
                    answers[node_id] = ray.get(ref)
                except Exception as error:  # noqa: BLE001 - the node died meanwhile, or the task could not run
                    raise SessionError("listing_failed", f"listing the inputs on {labels[node_id]} failed: "
                                                         f"{type(error).__name__}: {str(error).splitlines()[0]}",
                                       remedy="Check that node ('raylan doctor'), then try again.") from None
            self.set_progress(phase="checking", nodes_checked=len(answers), nodes_to_check=len(order))
            if pending and time.monotonic() > deadline:
                for ref in pending:
                    ray.cancel(ref, force=True)
                slow = join_nodes(labels[node_id] for node_id in pending.values())
                raise SessionError("listing_timed_out", f"listing the inputs on {slow} took over {LIST_TIMEOUT_S:g} s",
                                   remedy="Check the mounts on that node (a hung NFS/SMB mount?), or give fewer files.")
        if self.stopping.is_set():
            for ref in pending:
                ray.cancel(ref, force=True)
            return []
        host_ids = {node["NodeID"] for node in hosts}
        lacking = [labels[node_id] for node_id in order if node_id in host_ids and not answers[node_id]["model"]]
        if lacking:
            having = [labels[node_id] for node_id in order if node_id in host_ids and answers[node_id]["model"]]
            cwd = answers[order[0]]["cwd"]
            where = f"is on {join_nodes(having)} but not on" if having else "is on none of the nodes that can run it:"
            raise SessionError("model_not_on_every_node", (
                f"the model {self.model} {where} {join_nodes(lacking)} (a relative path is read from RayLAN's "
                f"working directory, {cwd} on {labels[order[0]]})"),
                remedy="Give the model as RayLAN uploads it (models/<file>), or put it at the same path on every node.")
        files = compare_listings(self.patterns, {labels[node_id]: answers[node_id]["matches"]
                                                 for node_id in order if node_id in reader_ids})
        # Each file once, under its first path (compare_listings found a reader, so there is a reference).
        return [path for path in files if path not in answers[reference]["repeats"]]

    # ------------------------------------------------------------------------------------ the journal
    def produced(self, name: str) -> bool:
        """The journal, the summary and, when this run annotates, annotated/."""
        return name in (JOURNAL, SUMMARY) or (self.annotate and name.startswith(ANNOTATED + "/"))

    def settings(self) -> dict:
        """What the answers depend on (each line's `run`, contract.run_settings): the model's identity (its
        file's SHA-256, as the Swift client records a streamed run's model; the model as given where it is no
        file here, e.g. a name Ultralytics downloads), conf, iou, classes and imgsz."""
        model = Path(self.model)
        if model.is_file():
            digest = hashlib.sha256()
            with open(model, "rb") as file:
                while chunk := file.read(1 << 20):
                    digest.update(chunk)
            identity = f"sha256:{digest.hexdigest()}"
        else:
            identity = self.model
        return contract.run_settings(contract.model_identity(identity, model.suffix[1:].lower()), self.conf,
                                     self.iou, self.classes, self.imgsz)

    def open_journal(self, files: list[str]) -> tuple[Any, set[str], set[str]]:
        """The journal, opened for appending, the files it answers already (resume), and of those the ones whose
        line is an error. With resume, by a streamed run's rule: a journal whose lines were made with other
        settings (their `run`) is refused; a line that answered a file, and one of an error that is the file's
        own (contract.FINAL_ERRORS), is kept and its file skipped; other errors' lines are dropped, for their
        files to be answered again (one line per file). Without resume an existing journal is moved to
        detections.jsonl.1 first, and annotated/ to annotated.1/."""
        journal = self.out_dir / JOURNAL
        self.run_settings = self.settings()
        done: set[str] = set()
        failed: set[str] = set()
        if journal.exists() and self.resume:
            lines = []
            with open(journal, encoding="utf-8", errors="replace") as old:
                for text in old:
                    try:
                        item = json.loads(text)
                    except ValueError:
                        continue  # a line cut short by a crash
                    if isinstance(item, dict) and isinstance(item.get("path"), str):
                        lines.append(item)
            for item in lines:
                if item.get("run") != self.run_settings:
                    raise SessionError(
                        "resume_settings_differ",
                        f"the journal in {self.out_dir} was answered with other settings "
                        f"({', '.join(contract.differences(item.get('run'), self.run_settings))})",
                        "Resume with the same model and settings, run without --resume (the earlier journal is kept "
                        "as detections.jsonl.1), or give another --cluster-out.")
            kept = self.out_dir / (JOURNAL + ".tmp")
            with open(kept, "w", encoding="utf-8") as new:
                for item in lines:
                    path, error = item["path"], item.get("error")
                    if path in done:
                        continue
                    if error is None and isinstance(item.get("result"), dict):
                        done.add(path)
                        write_line(new, item)
                    elif isinstance(error, dict) and error.get("code") in contract.FINAL_ERRORS:
                        done.add(path)
                        failed.add(path)
                        write_line(new, item)
            os.replace(kept, journal)
        elif journal.exists():
            os.replace(journal, self.out_dir / (JOURNAL + ".1"))
            annotated = self.out_dir / ANNOTATED
            if annotated.is_dir():
                shutil.rmtree(self.out_dir / (ANNOTATED + ".1"), ignore_errors=True)
                os.replace(annotated, self.out_dir / (ANNOTATED + ".1"))
        if self.annotate:
            (self.out_dir / ANNOTATED).mkdir(exist_ok=True)
        wanted = set(files)
        return self.open_journal_file("a"), done & wanted, failed & wanted

    # ------------------------------------------------------------------------------------ the work
    def work(self) -> None:
        import ray
        import ray.data

        started = time.monotonic()
        self.set_progress(phase="checking")
        plan = self.nodes()
        if plan is None or self.stopping.is_set():
            return
        readers, hosts, gpus, cpus, size = plan
        files = self.check(readers, hosts)
        if self.stopping.is_set():
            return
        journal, done, kept_failed = self.open_journal(files)
        counts = {"succeeded": 0, "failed": 0}
        nodes: Counter = Counter()
        backends: dict[str, tuple[str, str]] = {}
        pending = [path for path in files if path not in done]
        skipped = len(files) - len(pending)
        clashing = annotated_names(files) if self.annotate else {}
        detect_started = time.monotonic()

        first: list[float] = []  # when the first answers came, and how many: the rate runs from there

        def progress() -> None:
            answered = counts["succeeded"] + counts["failed"]
            now = time.monotonic()
            if answered and not first:
                first.extend((now, answered))
            # The rate since the first answers: the detectors' start (loading the model) is not in it.
            rate = (answered - first[1]) / (now - first[0]) if first and now - first[0] > 0.5 else 0.0
            left = len(pending) - answered
            self.set_progress(phase="detecting", total=len(files), done=answered + skipped, failed=counts["failed"],
                              skipped=skipped, images_per_s=round(rate, 2),
                              eta_s=round(left / rate, 1) if rate else None, nodes=dict(nodes))

        progress()
        try:
            if pending:
                device = "cpu" if gpus == 0 else None
                context = ray.data.DataContext.get_current()
                context.enable_progress_bars = False
                if self.actors is not None:
                    # A pool of a given size: its detectors all start (load the model) before the first batch goes
                    # out, so that the work spreads over them, not to whichever came up first.
                    context.wait_for_min_actors_s = ACTORS_START_S
                blocks = max(1, min(MAX_BLOCKS, math.ceil(len(pending) / self.batch_size)))
                dataset = ray.data.from_items([{"path": path} for path in pending], override_num_blocks=blocks)
                # A few read tasks per node and per detector: reading is quick next to detecting, and each task
                # is a worker process that imports Ray Data.
                dataset = dataset.map_batches(read_files, batch_size=None, num_cpus=READ_CPUS,
                                              **task_pool(min(blocks, READS_PER_NODE * max(len(readers), size))))
                dataset = dataset.map_batches(
                    Detector, batch_size=self.batch_size, num_cpus=cpus, num_gpus=gpus,
                    fn_constructor_kwargs={"model": self.model, "backend": self.backend_kind, "imgsz": self.imgsz,
                                           "conf": self.conf, "iou": self.iou, "classes": self.classes,
                                           "annotate": self.annotate, "device": device},
                    # Asked for a number of detectors: that many, started at once and spread over the nodes (else
                    # a pool that grows with the work, which a short run may never grow).
                    scheduling_strategy="SPREAD", **actor_pool(size, fixed=self.actors is not None))
                batches = dataset.iter_batches(batch_size=None, batch_format="numpy")
                try:
                    for batch in batches:
                        for row in range(len(batch["path"])):
                            self.answer(batch, row, journal, counts, nodes, backends, clashing)
                        progress()
                        if self.stopping.is_set():
                            break
                finally:
                    close = getattr(batches, "close", None)
                    if close is not None:
                        close()  # ends Ray Data's execution: its actors are released
                    del batches
        except SessionError:
            raise
        except Exception as error:  # noqa: BLE001 - Ray Data's failure (a detector that could not start...)
            if self.stopping.is_set():
                return
            raise SessionError("detection_failed", failure_message(error),
                               remedy="See the cluster's log (ray-data.log, the detector actors' logs).") from error
        finally:
            journal.close()
        progress()
        seconds = time.monotonic() - detect_started
        answered = counts["succeeded"] + counts["failed"]
        kinds = sorted({kind for kind, _ in backends.values()})
        reasons = {reason for _, reason in backends.values()}
        summary = {
            # As a streamed run counts: every input's line, the kept ones included (skipped says how many).
            "type": "summary", "inputs": len(files), "succeeded": counts["succeeded"] + skipped - len(kept_failed),
            "failed": counts["failed"] + len(kept_failed), "skipped": skipped, "seconds": round(time.monotonic() - started, 2),
            "images_per_s": round(answered / seconds, 2) if answered and seconds > 0 else 0.0,
            "startup_s": round(first[0] - detect_started, 2) if first else None,
            "nodes": dict(nodes), "backend": ", ".join(kinds) if kinds else None,
            "backend_reason": (next(iter(reasons)) if len(reasons) == 1 else "; ".join(
                f"{node}: {kind} ({reason})" for node, (kind, reason) in sorted(backends.items()))) if reasons
            else "no image needed the model", "cpus_per_actor": cpus, "gpus_per_actor": gpus,
            "stopped": self.stopping.is_set()}
        with open(self.out_dir / SUMMARY, "w", encoding="utf-8") as file:
            json.dump(summary, file, indent=1)
        self.emit(summary)

    def answer(self, batch: dict[str, np.ndarray], row: int, journal: Any, counts: dict, nodes: Counter,
               backends: dict, clashing: dict[str, str]) -> None:
        """One file's line: to the journal, to the client, its annotated image to annotated/."""
        path, node = str(batch["path"][row]), str(batch["node"][row])
        error = batch["error"][row]
        if error:
            line = contract.detection_record(path, self.run_settings, error=json.loads(error), node=node)
            counts["failed"] += 1
        else:
            result = json.loads(batch["result"][row])
            annotated, written = batch["annotated"][row], None
            if self.annotate and annotated is not None and len(annotated):
                name = clashing.get(path) or f"{Path(path).stem}.jpg"
                (self.out_dir / ANNOTATED / name).write_bytes(bytes(annotated))
                written = f"{ANNOTATED}/{name}"
            line = contract.detection_record(path, self.run_settings, result, node=node, annotated=written)
            counts["succeeded"] += 1
            backends.setdefault(node, (str(batch["backend"][row]), str(batch["reason"][row])))
        nodes[node] += 1
        write_line(journal, line)
        self.emit({"type": "image", **line})
