#!/usr/bin/env bash
# A CI/CD pipeline for one model, through the `workbench` command only (see docs/ci-cd.md):
#
#   test -> ingest -> search -> register -> gate -> canary -> promote
#
#   docs/templates/pipeline.sh            # every step, in order
#   docs/templates/pipeline.sh gate       # one step (a CI job runs them one by one)
#   docs/templates/pipeline.sh steps      # the step names, one a line
#
# Steps hand their results to the next through $PIPELINE_STATE (KEY=value lines), so each may be
# its own CI step. Exit 1 means a step said no: the data failed a check, the gate did not pass,
# or the canary was rolled back; the steps after it must not run. Other codes are the CLI's
# (docs/cli.md: 2 usage, 3 not found, 4 refused, 5 permission denied).
set -euo pipefail

# ---------------------------------------------------------------- inputs (env vars, defaults)
: "${WORKBENCH_HOME:=.workbench}"             # the store; must outlive a run (a volume, a bucket)
: "${DATA:=data/train.csv}"                   # training data: a path, folder, glob or URI
: "${HOLDOUT_DATA:=}"                         # held-out data for register and gate (default DATA)
: "${TARGET:=target}"                         # the target column
: "${MODEL:=model}"                           # the registered model's name
: "${DATASET:=$MODEL}"                        # dataset name (holdout: $DATASET-holdout)
: "${DEPLOYMENT:=$MODEL}"                     # Ray Serve deployment name
: "${CHECKS:=}"                               # a checks YAML for ingest (default checks without)
: "${SPACE:=}"                                # a search space YAML (default: the built-in one)
: "${NUM_SAMPLES:=4}"                         # trials per search
: "${FOLDS:=3}"                               # cross-validation folds per trial
: "${METRIC:=f1}"                             # what the gate compares
: "${MARGIN:=0.0}"                            # the gain over the champion the gate asks for
: "${DEPLOY_CPUS:=0.5}"                       # CPUs per serving replica
: "${CANARY_STEPS:=0.1,0.5,1.0}"              # the challenger's traffic share, step by step
: "${CANARY_MIN_REQUESTS:=20}"                # challenger requests judged at each step
: "${CANARY_POLL_S:=5}"                       # seconds between canary checks
: "${CANARY_MAX_ROUNDS:=60}"                  # checks before an unfinished canary is rolled back
: "${SMOKE_TRAFFIC:=1}"                       # 1: send holdout rows while the canary runs
: "${TEST_COMMAND:=make test-fast}"           # the "test" step (unit tests, no Ray)
: "${WORKBENCH:=workbench}"                   # the CLI
: "${PYTHON:=python3}"                        # builds the smoke requests from the holdout file
: "${PIPELINE_STATE:=$WORKBENCH_HOME/pipeline.state}"
export WORKBENCH_HOME

STEPS=(test ingest search register gate canary promote)
STEP=steps

say() { printf 'pipeline %s: %s\n' "$STEP" "$*"; }
die() { printf 'pipeline %s: %s\n' "$STEP" "$1" >&2; exit "${2:-1}"; }
wb() { $WORKBENCH "$@"; }

# state: KEY=value lines written by one step and read by the next
remember() { printf '%s=%q\n' "$1" "$2" >>"$PIPELINE_STATE"; }
recall() {
  [[ -f $PIPELINE_STATE ]] || die "no $PIPELINE_STATE: run the ingest step first" 2
  # shellcheck disable=SC1090
  source "$PIPELINE_STATE"
}

champion_version() {  # the version the champion alias names, empty when none
  wb models "$MODEL" --json | jq -r '[.[] | select(.aliases | index("champion")) | .version][0] // empty'
}

holdout_name() { if [[ -n $HOLDOUT_DATA ]]; then echo "$DATASET-holdout"; else echo "$DATASET"; fi; }

# ---------------------------------------------------------------------------------- the steps
step_test() {
  say "running: $TEST_COMMAND"
  $TEST_COMMAND
  say "passed"
}

step_ingest() {
  [[ -d $WORKBENCH_HOME ]] || mkdir -p -m 700 "$WORKBENCH_HOME"  # artifacts and requests: private
  mkdir -p "$(dirname "$PIPELINE_STATE")"
  : >"$PIPELINE_STATE"
  local checks=() out
  [[ -n $CHECKS ]] && checks=(--checks "$CHECKS")
  # exit 1 (a failed error check, nothing recorded) stops the pipeline here
  out=$(wb datasets ingest "$DATA" --name "$DATASET" --target "$TARGET" "${checks[@]}" --json)
  say "$(jq -r '"\(.name)@\(.version) " + (if .created then "recorded" else "unchanged" end)
    + " (\(.rows) rows)"' <<<"$out")"
  if [[ -n $HOLDOUT_DATA ]]; then
    out=$(wb datasets ingest "$HOLDOUT_DATA" --name "$(holdout_name)" --target "$TARGET" \
      "${checks[@]}" --json)
    say "$(jq -r '"holdout \(.name)@\(.version) " + (if .created then "recorded" else "unchanged"
      end) + " (\(.rows) rows)"' <<<"$out")"
  fi
}

step_search() {
  recall
  local space=() out
  [[ -n $SPACE ]] && space=(--space "$SPACE")
  out=$(wb search "$DATASET" "${space[@]}" --num-samples "$NUM_SAMPLES" --folds "$FOLDS" \
    --metric "$METRIC" --wait --json)
  remember EXPERIMENT "$(jq -r .experiment_id <<<"$out")"
  say "$(jq -r '"experiment \(.experiment_id): \(.n_trials) trials, best trial \(.best_trial_id) "
    + (.best_metrics | tostring)' <<<"$out")"
}

step_register() {
  recall
  local out
  out=$(wb register "$EXPERIMENT" --model "$MODEL" --train "$DATASET" \
    --holdout "$(holdout_name)" --json)
  remember CHALLENGER "$(jq -r .version <<<"$out")"
  say "$(jq -r '"registered \(.model)@\(.version) on the holdout " + (.metrics | tostring)' <<<"$out")"
}

step_gate() {
  recall
  local champion out rc=0
  champion=$(champion_version)
  if [[ -z $champion ]]; then
    remember CHAMPION ""
    remember GATE first
    say "no champion yet: $MODEL@$CHALLENGER will be the first, no gate to pass"
    return
  fi
  remember CHAMPION "$champion"
  out=$(wb gate "$MODEL@$CHALLENGER" --against champion --metric "$METRIC" --margin "$MARGIN" \
    --json) || rc=$?
  if ((rc == 1)); then
    remember GATE failed
    say "FAILED: $(jq -r .reason <<<"$out")"
    die "blocked: $MODEL@$CHALLENGER is not deployed; champion stays $MODEL@$champion" 1
  elif ((rc != 0)); then
    exit "$rc"
  fi
  remember GATE passed
  say "PASSED against $MODEL@$champion: $(jq -r .reason <<<"$out")"
}

smoke_traffic() {  # POST holdout rows to the deployment until killed
  local url=$1 body
  body=$(mktemp)
  "$PYTHON" - "${HOLDOUT_DATA:-$DATA}" "$TARGET" >"$body" <<'EOF'
import csv, json, sys
path, target = sys.argv[1:3]
with open(path, newline="") as f:
    rows = [r for _, r in zip(range(5), csv.DictReader(f))]
def value(v):
    try:
        return float(v)
    except ValueError:
        return v if v != "" else None
print(json.dumps({"records": [{k: value(v) for k, v in r.items() if k != target} for r in rows]}))
EOF
  while :; do
    curl -s -o /dev/null -X POST "$url/predict" -H 'Content-Type: application/json' \
      ${WORKBENCH_SERVE_TOKEN:+-H "Authorization: Bearer $WORKBENCH_SERVE_TOKEN"} \
      --data-binary "@$body" || true
    sleep 0.1
  done
}

step_canary() {
  recall
  [[ ${GATE:-} == passed || ${GATE:-} == first ]] ||
    die "the gate did not pass (${GATE:-not run}): nothing to deploy"
  [[ -n ${RAY_ADDRESS:-} ]] ||
    die "set RAY_ADDRESS to a Ray cluster that outlives this step (e.g. ray start --head)" 2
  local exists out rc=0 smoke=
  exists=$(wb deployments --json | jq --arg n "$DEPLOYMENT" 'any(.[]; .name == $n)')
  if [[ $exists != true ]]; then
    out=$(wb deploy "$MODEL@$CHALLENGER" --name "$DEPLOYMENT" --num-cpus "$DEPLOY_CPUS" \
      --reason "pipeline: first deployment" --json)
    remember CANARY first
    say "first deployment $DEPLOYMENT: $MODEL@$CHALLENGER serves 100% at $(jq -r .url <<<"$out")"
    return
  fi
  if [[ $SMOKE_TRAFFIC == 1 ]]; then
    local route
    route=$(wb deployments --json | jq -r --arg n "$DEPLOYMENT" '.[] | select(.name == $n)
      | .route_prefix')
    smoke_traffic "http://127.0.0.1:${WORKBENCH_SERVE_PORT:-8000}$route" &
    smoke=$!
  fi
  local champion=()
  [[ -n ${CHAMPION:-} ]] && champion=(--champion "$CHAMPION")
  say "canary of $MODEL@$CHALLENGER on $DEPLOYMENT (steps $CANARY_STEPS)"
  out=$(wb canary "$DEPLOYMENT" "$CHALLENGER" "${champion[@]}" --steps "$CANARY_STEPS" \
    --min-requests "$CANARY_MIN_REQUESTS" --poll-s "$CANARY_POLL_S" \
    --max-rounds "$CANARY_MAX_ROUNDS" --json) || rc=$?
  if [[ -n $smoke ]]; then kill "$smoke" 2>/dev/null || true; wait "$smoke" 2>/dev/null || true; fi
  if ((rc != 0 && rc != 1)); then  # the canary could not run: no split left behind
    remember CANARY error
    [[ -z ${CHAMPION:-} ]] || wb rollback "$DEPLOYMENT" --to "$CHAMPION" --json >/dev/null || true
    die "the canary command failed (exit $rc); $DEPLOYMENT back on $MODEL@${CHAMPION:-?}" "$rc"
  fi
  remember CANARY "$(jq -r .state <<<"$out")"
  say "$(jq -r '"\(.state); traffic " + (.weights | tostring)' <<<"$out")"
  # exit 0 either way: the promote step promotes, or rolls back and exits 1
}

step_promote() {
  recall
  local out
  case ${CANARY:-} in
    completed | first)
      out=$(wb promote "$MODEL@$CHALLENGER" --reason "pipeline: canary ${CANARY}" --json)
      say "promoted: $MODEL@champion -> version $(jq -r .version <<<"$out")"
      ;;
    "") die "the canary step did not run: nothing to promote" ;;
    *)
      if [[ -n ${CHAMPION:-} ]]; then
        wb rollback "$DEPLOYMENT" --to "$CHAMPION" --reason "pipeline: canary ${CANARY:-missing}" \
          --json >/dev/null
      fi
      die "rolled back: $DEPLOYMENT serves $MODEL@${CHAMPION:-?}; $MODEL@${CHALLENGER:-?} not promoted" 1
      ;;
  esac
}

# ----------------------------------------------------------------------------------- dispatch
run_step() {
  STEP=$1
  declare -F "step_$STEP" >/dev/null || { STEP=steps; die "unknown step '$1'; steps: ${STEPS[*]}" 2; }
  "step_$STEP"
}

if (($# == 0)); then
  for s in "${STEPS[@]}"; do run_step "$s"; done
elif [[ $1 == steps ]]; then
  printf '%s\n' "${STEPS[@]}"
else
  for s in "$@"; do run_step "$s"; done
fi
