#!/usr/bin/env bash
# On an offline GPU host with Python and torch only: installs the kit scripts/gpu-kit.sh made and runs RayLAN's
# GPU bench, leaving everything in RESULTS_DIR, also on failure.
#
#   gpu-bench.sh KIT_DIR RESULTS_DIR [--install-only] [--python PY] [--work DIR] [--bench-timeout S] [-- BENCH ARGS]
#
# 1. Verifies the parts in KIT_DIR against its MANIFEST (sha256) and keeps them in WORK/parts (default
#    /var/tmp/raylan-gpu). Parts may come in several transfers: while some are missing it says which and exits 0
#    (status "waiting" in RESULTS_DIR/host.txt); run it again once they are here.
# 2. Joins the parts, checks the archive's sha256 and unpacks it (WORK/kit).
# 3. Makes WORK/venv (no pip packages of the host) that sees the host's torch, torchvision if the host has one,
#    what torch needs and what the kit was made to take from the host (gpu-kit.sh --host-provides), and nothing
#    else of the host (links in WORK/host-site, a .pth file after the venv's own packages), then installs
#    the kit's wheels offline (pip --no-index --no-deps), runs pip check and an import check.
#    --install-only stops here. Steps 2-3 are skipped when done already for the same kit.
# 4. Makes a random-init YOLO11s (ultralytics' yolo11s.yaml, no download): WORK/yolo11s.pt.
# 5. Runs `raylan bench` on RayLAN's private local Ray (started with the venv's Ray: RAYLAN_PYTHON), then
#    `raylan down` (also on failure or timeout). Default bench arguments below; after `--`, yours replace them.
#
# RESULTS_DIR (at most 7 files): run.log (all output), backend-check.txt (auto's choice on the GPU with the shapes model), host.txt (nvidia-smi, Python, torch, the host's pip list,
# the kit), bench.txt and bench.json (the report), ray-logs.tar.gz (the Ray session's logs), model.txt.
# Python: --python, else RAYLAN_HOST_PYTHON, else python3 (the one that has torch).
set -uo pipefail

# The samples (JPEGs, shipped in the kit) at YOLO11s' 640: the client shrinks them to 640, the replica decodes them on
# the GPU (nvjpeg). Half a GPU per replica, so that the other backend's and naive Serve's applications fit beside it.
bench_args=(--imgsz 640 --concurrency 16,64,256 --images-per-request 1,8,32 --max-batch 128
            --max-queued-requests 512 --duration 6 --gpus-per-replica 0.5)
usage() { sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 64; }
[ $# -ge 2 ] || usage
case "$1" in -*) usage ;; esac
kit_dir=$1 results=$2; shift 2
install_only=0 python=${RAYLAN_HOST_PYTHON:-python3} work=${RAYLAN_GPU_WORK:-/var/tmp/raylan-gpu} bench_timeout=400
while [ $# -gt 0 ]; do
    case "$1" in
        --install-only) install_only=1; shift ;;
        --python) python=${2:?}; shift 2 ;;
        --work) work=${2:?}; shift 2 ;;
        --bench-timeout) bench_timeout=${2:?}; shift 2 ;;
        --) shift; bench_args=("$@"); break ;;
        *) echo "gpu-bench.sh: unknown argument $1" >&2; usage ;;
    esac
done
here=$(cd "$(dirname "$0")" && pwd)
kit_py="$here/gpu_kit.py"
mkdir -p "$results" "$work" || exit 1
results=$(cd "$results" && pwd) work=$(cd "$work" && pwd)
python=$(command -v "$python") || { echo "gpu-bench.sh: no $python" >&2; exit 1; }
started=$(date +%s)
say() { echo "[gpu-bench +$(( $(date +%s) - started ))s] $*"; }

main() {
    {
        echo "# $(date -u +%FT%TZ) $(uname -srm) · $(nproc) CPUs · $(free -g 2>/dev/null | awk '/Mem:/ {print $2 " GiB"}')"
        echo "# nvidia-smi"; nvidia-smi 2>&1 || echo "(no nvidia-smi)"
        nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 || true
        echo "# host Python: $python"
        "$python" -c 'import sys, torch; print("python", sys.version.split()[0], "· torch", torch.__version__, "· CUDA", torch.version.cuda, "· available", torch.cuda.is_available(), "·", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")' 2>&1
        echo "# host pip list"; "$python" -m pip list --disable-pip-version-check 2>&1 | head -400
    } > "$results/host.txt"
    say "host: $(grep -m1 '^python ' "$results/host.txt")"

    "$python" "$kit_py" gather "$kit_dir" "$work"
    status=$?
    if [ $status = 3 ]; then
        echo "status: waiting for parts" >> "$results/host.txt"
        say "waiting for the other parts: run this again once they are in $kit_dir (verified parts are kept in $work/parts)"
        exit 0
    fi
    [ $status = 0 ] || { say "FAILED: the parts do not verify"; exit 1; }

    stamp=$(awk '/^# archive /{print $4}' "$work/parts/MANIFEST")
    venv="$work/venv"
    if [ -f "$venv/.kit" ] && [ "$(cat "$venv/.kit")" = "$stamp" ] && "$venv/bin/python" -c 'import ray, ultralytics' 2>/dev/null; then
        say "kit already installed in $venv"
    else
        "$python" "$kit_py" unpack "$work" || { say "FAILED: unpacking"; exit 1; }
        rm -rf "$venv"
        say "making $venv (sees the host's torch only) and installing the kit offline…"
        "$python" -m venv --without-pip "$venv" || { say "FAILED: $python -m venv"; exit 1; }
        "$python" "$kit_py" expose "$venv" "$work/host-site" --kit "$work/kit" || { say "FAILED: exposing the host's torch"; exit 1; }
        PIP_NO_INDEX=1 PIP_INDEX_URL=http://127.0.0.1:9/no-index "$python" "$kit_py" install "$work" "$venv" \
            || { say "FAILED: installing the kit"; exit 1; }
        echo "$stamp" > "$venv/.kit"
    fi
    { echo "# kit"; sed -n '1,2p' "$work/parts/MANIFEST"; echo "# venv pip list"; "$venv/bin/python" -m pip list --disable-pip-version-check 2>&1; } >> "$results/host.txt"
    say "installed: $("$venv/bin/python" -c 'import ray, ultralytics, torch, torchvision; print("ray", ray.__version__, "· ultralytics", ultralytics.__version__, "· torch", torch.__version__, "· torchvision", torchvision.__version__)' 2>&1 | tail -1)"
    if [ "$install_only" = 1 ]; then
        echo "status: installed" >> "$results/host.txt"
        exit 0
    fi

    raylan="$work/kit/raylan"
    [ -x "$raylan" ] || { say "FAILED: the kit has no raylan (made with --no-raylan)"; exit 1; }
    # raylan's own shared libraries (libturbojpeg) for raylan alone, not for Ray and its workers.
    raylan_run=("$raylan")
    [ -d "$work/kit/lib" ] && raylan_run=(env "LD_LIBRARY_PATH=$work/kit/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$raylan")
    export RAYLAN_PYTHON="$venv" RAYLAN_HOME="$work/home" YOLO_OFFLINE=1 YOLO_CONFIG_DIR="$work/ultralytics"
    export RAYLAN_CLUSTER_DIR="$work/kit/cluster" PYTHONUNBUFFERED=1
    cd "$work" || exit 1

    finish() {
        local record="$RAYLAN_HOME/local-cluster.json" temp
        if [ -f "$record" ]; then
            temp=$("$venv/bin/python" -c 'import json, sys; print(json.load(open(sys.argv[1])).get("temporaryDirectory", ""))' "$record" 2>/dev/null)
            if [ -n "$temp" ] && [ -d "$temp/session_latest/logs" ]; then
                tar -C "$temp/session_latest" -czf "$results/ray-logs.tar.gz" logs 2>/dev/null
                local size; size=$(stat -c %s "$results/ray-logs.tar.gz" 2>/dev/null || echo 0)
                if [ "$size" -gt $((15 * 1024 * 1024)) ]; then  # keep it returnable: the newest logs only
                    (cd "$temp/session_latest" && find logs -type f -printf '%T@ %p\n' | sort -rn | head -200 | cut -d' ' -f2- \
                        | tar -czf "$results/ray-logs.tar.gz" -T -)
                fi
            fi
        fi
        say "raylan down"
        timeout 60 "${raylan_run[@]}" down 2>&1 || true
        say "done in $(( $(date +%s) - started )) s; results in $results"
    }
    trap finish EXIT
    trap 'exit 130' INT TERM

    model="$work/yolo11s.pt"
    if [ -s "$model" ]; then
        echo "reusing $model" > "$results/model.txt"
    else
        say "making a random-init YOLO11s from ultralytics' yolo11s.yaml (no download)…"
        "$venv/bin/python" -c "import sys; from ultralytics import YOLO; m = YOLO('yolo11s.yaml'); m.save(sys.argv[1]); m = YOLO(sys.argv[1]); print(m.model.yaml.get('yaml_file'), sum(p.numel() for p in m.model.parameters()), 'parameters')" "$model" \
            > "$results/model.txt" 2>&1 || { cat "$results/model.txt"; say "FAILED: making the model"; exit 1; }
    fi
    say "model: $(tail -1 "$results/model.txt" 2>/dev/null) → $model"

    say "raylan bench --model $model ${bench_args[*]} (at most ${bench_timeout} s)"
    set -o pipefail
    # On the GPU, with a model that finds boxes (the shipped shapes model): does `auto` pick the tensor backend,
    # and how far are its detections from Ultralytics' (backend-check.txt)? YOLO11s is random-init: no boxes.
    say "backend check on the GPU with the shipped shapes model…"
    (cd "$work/kit/cluster" && timeout 120 "$venv/bin/python" -c "import sys; from raylan_detect.models import load_backend; b, why = load_backend('auto', sys.argv[1]); print(b.kind, b.device, why)" \
        "$work/kit/models/shapes-yolo11n.pt") > "$results/backend-check.txt" 2>&1 || say "backend check failed (see backend-check.txt)"
    timeout -k 30 "$bench_timeout" "${raylan_run[@]}" bench --model "$model" --json "$results/bench.json" "${bench_args[@]}" 2>&1 \
        | tee "$results/bench.txt"
    status=$?
    [ $status = 0 ] && say "bench finished" || say "FAILED: raylan bench exited $status$([ $status = 124 ] && echo ' (timed out)')"
    exit $status
}

main 2>&1 | tee -a "$results/run.log"
exit "${PIPESTATUS[0]}"
