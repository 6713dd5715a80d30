#!/usr/bin/env bash
# Recorded runs on a lent machine (a GPU session: `device` tool, 10 minutes a command), brought back as one
# archive: for each SPEC, train its units within the time left, then export what is stored (a partial run
# is a recording too: it resumes anywhere with --resume-from), and pack every recording into OUT/recorded.tgz.
#   bash tools/device_runs.sh SECONDS SPEC [SPEC ...]
#   SPEC = params/<file>.yaml:<profile>:<recorded name>[:<source's recorded name>]   (the last for a transfer)
# Environment: OUT (default _build/device_runs), PY (default .venv/bin/python, else python3), DEVICE (default
# cuda; cpu dry-runs it), RESULTS (default /tmp/device_results), STACK (networks trained as one computation,
# `run --stack`: default 8 on cuda, 1 on cpu). Back here: tar xzf recorded.tgz -C book/recorded,
# then commit; each unit's summary names the device, machine and code version it trained with.
set -u
cd "$(dirname "$0")/.."
budget=${1:?"give the seconds this may take, then one SPEC or more (see the header)"}
shift
out=${OUT:-_build/device_runs}
results=${RESULTS:-/tmp/device_results}
device=${DEVICE:-cuda}
if [ "$device" = cuda ]; then stack=${STACK:-8}; else stack=${STACK:-1}; fi
if [ -z "${PY:-}" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
mkdir -p "$out" "$results" "$out/recorded"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
deadline=$(( $(date +%s) + budget ))
log="$out/device_runs.log"
echo "start $(date -u +%FT%TZ) device $device stack $stack code $(git rev-parse --short HEAD 2>/dev/null)" > "$log"
export_one() {  # params profile name [--source]: the recording, or nothing when no unit is stored
  "$PY" -m lt_core results "$1" --profile "$2" --set "device=$device" --results "$results" ${4:-} \
    --export "$out/recorded/$3" >> "$log" 2>&1
  if [ "$(wc -l < "$out/recorded/$3/summary.csv" 2>/dev/null || echo 0)" -le 1 ]; then
    rm -rf "$out/recorded/$3"
    echo "$3: no unit stored, nothing recorded" >> "$log"
  fi
}
for spec in "$@"; do
  IFS=: read -r params profile name source_name <<< "$spec"
  left=$(( deadline - $(date +%s) - 60 ))  # a minute kept for the exports and the archive
  if [ "$left" -gt 10 ]; then
    timeout --signal=TERM "$left" "$PY" -m lt_core run "$params" --profile "$profile" --set "device=$device" \
      --results "$results" --stack "$stack" --quiet >> "$log" 2>&1
    echo "$spec: run exit status $?" >> "$log"
  else
    echo "$spec: no time left to train" >> "$log"
  fi
  export_one "$params" "$profile" "$name"
  if [ -n "${source_name:-}" ]; then export_one "$params" "$profile" "$source_name" --source; fi
done
tar czf "$out/recorded.tgz" -C "$out/recorded" . && rm -rf "$out/recorded"
echo "end $(date -u +%FT%TZ)" >> "$log"
tail -n 20 "$log"
