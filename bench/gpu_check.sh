#!/usr/bin/env bash
# The whole check of the "cuda" backend on a GPU machine, in one call: builds cgru in place, then
# runs in order, each stage in its own time limit and going on when one fails:
#   env                        the device, driver and package versions (also in the JSON)
#   build                      python setup.py build_ext --inplace (see "Build" below)
#   smoke                      bench/gpu_sanitize.py: a short forward + backward of each kernel
#                              group (step, fused backward, persistent) against NumPy
#   tests-cuda                 pytest tests/backends/test_cuda.py
#   tests-backends             every backend-parametrised test on "numpy" and "cuda"
#                              (CGRU_TEST_BACKENDS=numpy,cuda pytest -m backends)
#   tests-backends-persistent  the same with the persistent kernel on (CGRU_CUDA_PERSISTENT=auto)
#   memcheck, racecheck        compute-sanitizer over bench/gpu_sanitize.py --kernels step backward
#   memcheck-persistent,       ... and over --kernels persistent, separately, so that a hang there
#   racecheck-persistent       costs only its own short limit
#   bench                      bench/gpu_compare.py against PyTorch's cuDNN nn.GRU: batch 1, 8,
#                              64, 256, time 256, hidden 256 and 512, inference and training,
#                              persistent kernel off and always
# and prints a pass/fail summary. The whole run stays within a budget (default 420 s): a stage
# gets the smaller of its own limit and what is left, and is skipped when under 10 s is left.
#
# Usage (repository root or anywhere; OUT defaults to build/gpu-check):
#   OUT=/some/dir bash bench/gpu_check.sh [--stages a,b,...] [--select EXPR] [--budget S]
#                                         [--bench-args "ARGS"] [--emulate]
#     --stages      run only these stages, in the order above (e.g. a rerun of bench alone)
#     --select      pytest -k EXPR for the test stages
#     --bench-args  arguments for bench/gpu_compare.py instead of the default
#                   "--repeats 7 --warmup 2" (it always gets --json $OUT/gpu_compare.json)
#     --emulate     no GPU: CuPy is replaced by the CPU emulator of tests/cuda_emu (the backend
#                   tests run with CGRU_TEST_CUDA_EMULATOR=1, the scripts with --emulate, the bench
#                   on tiny shapes, compute-sanitizer only where installed); checks this script's
#                   paths, arguments, JSON and stage control, nothing about a GPU
# Environment: PYTHON (default python3), GPU_CHECK_TIMEOUT_<STAGE> (seconds; STAGE upper case with
# '_' for '-', e.g. GPU_CHECK_TIMEOUT_TESTS_CUDA=150), GPU_CHECK_WHEELS (default .whl: a folder of
# wheels installed for the build, see "Build"), CGRU_EMU_LIB (--emulate: an
# emulator library already built by tests/cuda_emu/fake_cupy.py's build_emulator).
#
# Build: needs Cython, NumPy, setuptools >= 77 (pyproject's license expression) and
# scipy-openblas32 (the CBLAS the engine links). Every wheel in GPU_CHECK_WHEELS is installed for
# the build only (pip --no-index --no-deps into a scratch folder on PYTHONPATH). Where
# scipy-openblas32 is still missing, a system OpenBLAS found by pkg-config is used
# (CGRU_BLAS=system); failing that the build is skipped with a note: the GPU stages need no
# compiled engine (their CPU reference is the NumPy backend), and "cpu" is then simply not among
# the backends. To bring the wheels to a machine with no package index (.whl is git-ignored):
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl \
#       scipy-openblas32==0.3.34.481.3 "setuptools>=77"      # then carry .whl with the tree
#
# Writes to $OUT: gpu_check.log (every stage's output), gpu_check.json (stages with status,
# seconds, limit, summary line and notes; environment; the benchmark's results; rewritten after
# each stage, so a cut-off run leaves what it did) and gpu_compare.json. Exit status 0 when no
# stage failed or timed out, 1 otherwise.
set -uo pipefail
if ((BASH_VERSINFO[0] < 4)); then
    echo "gpu_check.sh: needs bash 4 or later (associative arrays), this is $BASH_VERSION" >&2
    exit 2
fi

STAGES=(env build smoke tests-cuda tests-backends tests-backends-persistent
        memcheck memcheck-persistent racecheck racecheck-persistent bench)
declare -A LIMIT=([env]=30 [build]=120 [smoke]=60 [tests-cuda]=120 [tests-backends]=90
                  [tests-backends-persistent]=75 [memcheck]=45 [memcheck-persistent]=45
                  [racecheck]=45 [racecheck-persistent]=45 [bench]=150)
SKIP_RC=77        # a stage body's "skipped, with a NOTE saying why"
MIN_STAGE_S=10
SELF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
ROOT="$(dirname "$(dirname "$SELF")")"

# ---------------------------------------------------------------------------------------------
# Stage bodies: each runs in its own process (bash gpu_check.sh __stage NAME) under `timeout`,
# from the repository root, with the settings exported by the parent.

emulating() { [ "$GPU_CHECK_EMULATE" = 1 ]; }

stage_env() {
    echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); host: $(uname -srm); cpus: $(nproc 2>/dev/null)"
    if command -v nvidia-smi >/dev/null 2>&1; then
        nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,temperature.gpu \
            --format=csv || true
    else
        echo "nvidia-smi: not found"
    fi
    local tool
    for tool in nvcc compute-sanitizer g++; do
        if command -v "$tool" >/dev/null 2>&1; then
            echo "$tool: $("$tool" --version 2>&1 | grep -m 1 -iE 'release [0-9]|version [0-9]|[0-9]+\.[0-9]+\.[0-9]+')"
        else
            echo "$tool: not found"
        fi
    done
    "$PYTHON" - "$WORK/env.json" <<'EOF'
import importlib, json, platform, sys

info = {"python": platform.python_version(), "executable": sys.executable}
for name in ("numpy", "Cython", "scipy_openblas32", "cupy", "torch", "pytest"):
    try:
        info[name] = getattr(importlib.import_module(name), "__version__", "installed")
    except Exception as exc:
        info[name] = f"missing ({type(exc).__name__}: {exc})"
try:
    import cupy

    device = cupy.cuda.Device()
    attributes = device.attributes
    info["cupy_device"] = {
        "name": cupy.cuda.runtime.getDeviceProperties(device.id)["name"].decode(),
        "compute_capability": device.compute_capability,
        "multiprocessors": attributes.get("MultiProcessorCount"),
        "max_shared_memory_per_block_optin": attributes.get("MaxSharedMemoryPerBlockOptin"),
        "cooperative_launch": attributes.get("CooperativeLaunch"),
        "cuda_runtime": cupy.cuda.runtime.runtimeGetVersion(),
        "cuda_driver": cupy.cuda.runtime.driverGetVersion(),
    }
except Exception as exc:
    info["cupy_device"] = f"unavailable ({type(exc).__name__}: {exc})"
try:
    import torch

    info["torch_cuda"] = {"available": torch.cuda.is_available(), "cuda": torch.version.cuda,
                          "cudnn": torch.backends.cudnn.version() if torch.cuda.is_available() else None}
except Exception as exc:
    info["torch_cuda"] = f"unavailable ({type(exc).__name__}: {exc})"
print(json.dumps(info, indent=1))
with open(sys.argv[1], "w") as fh:
    json.dump(info, fh)
EOF
}

stage_build() {
    local site="$WORK/build-site" wheels=() blas=()
    mapfile -t wheels < <(find "$GPU_CHECK_WHEELS" -maxdepth 1 -name '*.whl' 2>/dev/null | sort)
    if [ ${#wheels[@]} -gt 0 ]; then  # for the build only: the built package needs none of them
        echo "installing for the build: ${wheels[*]##*/}"
        "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --target "$site" "${wheels[@]}" || return 1
        export PYTHONPATH="$site:$PYTHONPATH"
    fi
    if ! "$PYTHON" -c "import Cython, numpy, setuptools; print('setuptools', setuptools.__version__)"; then
        echo "NOTE: Cython, NumPy or setuptools is missing: cannot build the compiled engine"
        return 1
    fi
    if ! "$PYTHON" -c "import scipy_openblas32" 2>/dev/null; then
        if pkg-config --exists openblas 2>/dev/null; then
            echo "NOTE: scipy-openblas32 is not installed: building against the system OpenBLAS"
            blas=(env CGRU_BLAS=system)
        else
            echo "NOTE: scipy-openblas32 is not installed and no wheel of it is in $GPU_CHECK_WHEELS:" \
                 "no compiled engine; the CPU reference of every GPU stage is the NumPy backend"
            return "$SKIP_RC"
        fi
    fi
    "${blas[@]}" "$PYTHON" setup.py build_ext --inplace -j "$(nproc 2>/dev/null || echo 2)" || return 1
    "$PYTHON" -c "import cgru; info = cgru.backend_info(); print(info); assert info['compiled'], info"
}

stage_smoke() {
    "$PYTHON" bench/gpu_sanitize.py "${EMULATE_FLAG[@]}"
}

pytest_stage() {  # pytest_stage ARGS...: pytest with the check's settings
    local select=()
    [ -n "$GPU_CHECK_SELECT" ] && select=(-k "$GPU_CHECK_SELECT")
    "$PYTHON" -m pytest -p no:cacheprovider -v -rfEs --tb=short "${select[@]}" "$@"
}

stage_tests_cuda() { pytest_stage tests/backends/test_cuda.py; }

backends_stage() {  # backends_stage PERSISTENT_MODE: the backend-parametrised tests on numpy and cuda
    local emulator=0
    emulating && emulator=1
    CGRU_TEST_BACKENDS=numpy,cuda CGRU_TEST_CUDA_EMULATOR=$emulator CGRU_CUDA_PERSISTENT=$1 \
        pytest_stage -m backends tests
}

stage_tests_backends() { backends_stage off; }
stage_tests_backends_persistent() { backends_stage auto; }

sanitize() {  # sanitize TOOL KERNEL_GROUP...: bench/gpu_sanitize.py under compute-sanitizer
    local tool=$1
    shift
    local driver=("$PYTHON" bench/gpu_sanitize.py "${EMULATE_FLAG[@]}" --kernels "$@")
    local sanitizer
    sanitizer=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null)
    if [ -z "$sanitizer" ]; then
        if emulating; then
            echo "NOTE: no compute-sanitizer: the kernel driver ran on the emulator without it"
            "${driver[@]}"
            return
        fi
        echo "NOTE: compute-sanitizer not found (PATH, /usr/local/cuda/bin)"
        return 1
    fi
    local options=(--tool "$tool" --error-exitcode 86 --print-limit 30)
    # Failed CUDA API calls: CuPy raises on each one that matters (and the driver then fails);
    # those it makes on purpose and handles would only be noise here.
    if "$sanitizer" --help 2>&1 | grep -q -- '--report-api-errors'; then
        options+=(--report-api-errors no)
    fi
    echo "$sanitizer ${options[*]}"
    "$sanitizer" "${options[@]}" "${driver[@]}"
}

stage_memcheck() { sanitize memcheck step backward; }
stage_memcheck_persistent() { sanitize memcheck persistent; }
stage_racecheck() { sanitize racecheck step backward; }
stage_racecheck_persistent() { sanitize racecheck persistent; }

stage_bench() {
    local args
    read -r -a args <<<"$GPU_CHECK_BENCH_ARGS"
    "$PYTHON" bench/gpu_compare.py "${EMULATE_FLAG[@]}" "${args[@]}" --json "$OUT/gpu_compare.json"
}

if [ "${1:-}" = __stage ]; then
    cd "$ROOT" || exit 1
    EMULATE_FLAG=()
    emulating && EMULATE_FLAG=(--emulate)
    "stage_${2//-/_}"
    exit $?
fi

# ---------------------------------------------------------------------------------------------
# The parent: options, then each stage under its limit, a report after each.

usage() { sed -n '2,/^set -uo/p' "$SELF" | sed '$d; s/^# \{0,1\}//'; exit "${1:-0}"; }

selected="" budget=420 emulate=0 test_filter="" bench_args=""
while [ $# -gt 0 ]; do
    case "$1" in
        --stages) selected=${2:?--stages needs a list}; shift 2 ;;
        --select) test_filter=${2:?--select needs an expression}; shift 2 ;;
        --budget) budget=${2:?--budget needs seconds}; shift 2 ;;
        --bench-args) bench_args=${2?--bench-args needs a string}; shift 2 ;;
        --emulate) emulate=1; shift ;;
        -h|--help) usage 0 ;;
        *) echo "gpu_check.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
if ! [[ "$budget" =~ ^[0-9]+$ ]]; then
    echo "gpu_check.sh: --budget must be whole seconds, got '$budget'" >&2
    exit 2
fi
run=()
for stage in "${STAGES[@]}"; do
    if [ -z "$selected" ] || [[ ",$selected," == *",$stage,"* ]]; then
        run+=("$stage")
    fi
done
for wanted in ${selected//,/ }; do
    if [ -z "${LIMIT[$wanted]+set}" ]; then
        echo "gpu_check.sh: unknown stage '$wanted'; stages: ${STAGES[*]}" >&2
        exit 2
    fi
done
for stage in "${STAGES[@]}"; do
    var="GPU_CHECK_TIMEOUT_$(tr 'a-z-' 'A-Z_' <<<"$stage")"
    if [ -n "${!var:-}" ]; then
        if ! [[ "${!var}" =~ ^[1-9][0-9]*$ ]]; then
            echo "gpu_check.sh: $var must be a positive number of seconds, got '${!var}'" >&2
            exit 2
        fi
        LIMIT[$stage]=${!var}
    fi
done
if [ -z "$bench_args" ]; then
    bench_args="--repeats 7 --warmup 2"
    [ "$emulate" = 1 ] && bench_args="--batches 1 9 --hidden 8 --time 4 --repeats 1 --warmup 0"
fi

OUT=${OUT:-$ROOT/build/gpu-check}
mkdir -p "$OUT" || exit 2
OUT=$(cd "$OUT" && pwd)
cd "$ROOT" || exit 2
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/logs"
LOG="$OUT/gpu_check.log"
: >"$LOG"
rm -f "$OUT/gpu_check.json" "$OUT/gpu_compare.json"
export OUT WORK PYTHON=${PYTHON:-python3} PYTHONUNBUFFERED=1 SKIP_RC
export GPU_CHECK_EMULATE=$emulate GPU_CHECK_SELECT=$test_filter GPU_CHECK_BENCH_ARGS=$bench_args
export GPU_CHECK_WHEELS=${GPU_CHECK_WHEELS:-$ROOT/.whl}
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
if [ "$emulate" = 1 ] && [ -z "${CGRU_EMU_LIB:-}" ]; then  # one emulator build for every stage
    if "$PYTHON" -c "import sys; sys.path.insert(0, 'tests/cuda_emu'); import fake_cupy
fake_cupy.build_emulator(sys.argv[1])" "$WORK" >>"$LOG" 2>&1; then
        export CGRU_EMU_LIB="$WORK/libcgru_emu.so"
    fi
fi
STARTED=$(date -u '+%Y-%m-%dT%H:%M:%SZ')
DEADLINE=$((SECONDS + budget))

write_report() {  # write_report FINISHED(0|1): $OUT/gpu_check.json from the stage records
    "$PYTHON" - "$WORK" "$OUT" "$STARTED" "$SECONDS" "$budget" "$emulate" "$1" <<'EOF'
import json, os, re, sys

work, out, started, elapsed, budget, emulate, finished = sys.argv[1:]
SUMMARY = re.compile(r"^=+ .*\d+ (passed|failed|error|errors|skipped|deselected).* in [\d.]+s|ERROR SUMMARY"
                     r"|all cases passed|\d+ failures \(|agree with PyTorch|rows FAIL|^\{'backend'")


def read(path):
    try:
        with open(path, errors="replace") as fh:
            return fh.read()
    except OSError:
        return None


stages = []
for line in (read(os.path.join(work, "stages.tsv")) or "").splitlines():
    name, status, rc, seconds, limit, note = line.split("\t")
    log = (read(os.path.join(work, "logs", name + ".log")) or "").splitlines()
    summaries = [l.strip("= ") for l in log if SUMMARY.search(l)]
    summary = summaries[-1] if summaries else None
    last = [l for l in log if l.strip()]
    if status == "timeout" and last:  # where it hung: pytest -v names each test as it starts
        summary = f"cut off at the limit; last output: {last[-1].strip()[:200]}"
    notes = [l[len("NOTE: "):] for l in log if l.startswith("NOTE: ")] + ([note] if note else [])
    stages.append({"name": name, "status": status, "rc": int(rc) if rc else None, "seconds": int(seconds),
                   "limit_s": int(limit), "summary": summary, "notes": notes})
env, bench = (read(os.path.join(work, "env.json")), read(os.path.join(out, "gpu_compare.json")))
build = [s for s in stages if s["name"] == "build"]
report = {
    "script": "bench/gpu_check.sh",
    "mode": "emulated (no GPU)" if emulate == "1" else "device",
    "started": started,
    "finished": finished == "1",
    "elapsed_s": int(elapsed),
    "budget_s": int(budget),
    "compiled_engine": build[0]["status"] == "pass" if build else None,
    "ok": all(s["status"] in ("pass", "skipped") for s in stages),
    "stages": stages,
    "environment": json.loads(env) if env else None,
    "bench": json.loads(bench) if bench else None,
}
with open(os.path.join(out, "gpu_check.json"), "w") as fh:
    json.dump(report, fh, indent=1)
EOF
}

record() {  # record NAME STATUS RC SECONDS LIMIT NOTE
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$WORK/stages.tsv"
    write_report 0 || echo "gpu_check.sh: could not write $OUT/gpu_check.json" >&2
}

run_stage() {  # run_stage NAME: the stage in a child process under its limit
    local name=$1 left limit start rc status
    left=$((DEADLINE - SECONDS))
    limit=${LIMIT[$name]}
    ((left < limit)) && limit=$left
    if ((left < MIN_STAGE_S)); then
        printf '\n=== [%4ds] %s: skipped, %ds of the %ds budget left\n' "$SECONDS" "$name" "$left" "$budget" |
            tee -a "$LOG"
        record "$name" skipped "" 0 "$limit" "skipped: ${left}s of the ${budget}s budget left"
        return
    fi
    printf '\n=== [%4ds] %s (limit %ds)\n' "$SECONDS" "$name" "$limit" | tee -a "$LOG"
    start=$SECONDS
    timeout --kill-after=10 "$limit" bash "$SELF" __stage "$name" 2>&1 | tee -a "$LOG" "$WORK/logs/$name.log"
    rc=${PIPESTATUS[0]}
    case "$rc" in
        0) status=pass ;;
        "$SKIP_RC") status=skipped ;;
        124|137) status=timeout ;;
        *) status=fail ;;
    esac
    printf '=== [%4ds] %s: %s (exit status %s, %ds)\n' "$SECONDS" "$name" "$status" "$rc" "$((SECONDS - start))" |
        tee -a "$LOG"
    record "$name" "$status" "$rc" "$((SECONDS - start))" "$limit" ""
}

{
    echo "gpu_check.sh: $([ "$emulate" = 1 ] && echo "EMULATED (no GPU)" || echo device) run of: ${run[*]}"
    echo "root: $ROOT; OUT: $OUT; python: $PYTHON; budget: ${budget}s"
} | tee -a "$LOG"
for stage in "${run[@]}"; do
    run_stage "$stage"
done
write_report 1

{
    if [ -s "$WORK/logs/bench.log" ]; then
        printf '\n=== benchmark\n'
        grep -E '^(device: |\||all results|[0-9]+ rows FAIL)' "$WORK/logs/bench.log"
    fi
    printf '\n=== summary (%ds of the %ds budget; %s)\n' "$SECONDS" "$budget" "$OUT/gpu_check.json"
    "$PYTHON" - "$OUT/gpu_check.json" <<'EOF'
import json, sys

report = json.load(open(sys.argv[1]))
for s in report["stages"]:
    line = f"{s['name']:<26} {s['status']:<8} {s['seconds']:>4}s  {s['summary'] or ''}"
    print(line.rstrip())
    for note in s["notes"]:
        print(f"{'':<26} note: {note}")
bad = [s["name"] for s in report["stages"] if s["status"] not in ("pass", "skipped")]
print(f"overall: {'PASS' if not bad else 'FAIL (' + ', '.join(bad) + ')'}")
EOF
} | tee -a "$LOG"
failed=$(awk -F'\t' '$2 != "pass" && $2 != "skipped"' "$WORK/stages.tsv" 2>/dev/null | wc -l)
[ "$failed" -eq 0 ]
