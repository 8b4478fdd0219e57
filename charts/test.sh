#!/usr/bin/env bash
# The Helm chart's test (ctest: `chart`, label chart). For every value set in
# charts/telegate/ci/*-values.yaml: `helm lint --strict`, `helm template`, the rendered manifests
# decoded strictly into the Kubernetes API types (charts/validate), the chart's invariants checked
# (below) and, when TELEGATE_BIN names a built telegate, the rendered telegate.yaml accepted by
# `telegate check-config`. Every ci/invalid-*.yaml must be refused by values.schema.json with a
# message naming the key in its "# expect:" line.
# Needs go (the pinned helm and the validator are built once from the Go module proxy and cached
# in ~/.cache/telegate). Environment: TELEGATE_BIN (optional), TELEGATE_CACHE.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

chart=charts/telegate
# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion): helm built with `go install`
# carries no cluster version of its own and would assume v1.20.
kube=(--kube-version 1.27.0)
helm=$(scripts/helm)

# The validator, built once per source version (its build pulls k8s.io/api and takes a minute).
validator_sources=(charts/validate/go.mod charts/validate/go.sum charts/validate/main.go)
validator_key=$({ go version; cat "${validator_sources[@]}"; } | sha256sum | cut -c1-16)
validator=${TELEGATE_CACHE:-$HOME/.cache/telegate}/chart-validate-$validator_key/validate
if [[ ! -x $validator ]]; then
  echo "chart: building the manifest validator into ${validator%/*}" >&2
  mkdir -p "${validator%/*}"
  (cd charts/validate && GOFLAGS=-mod=readonly go build -o "$validator.tmp" .)
  mv "$validator.tmp" "$validator"
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
passed=0
failed=0
fail() { echo "FAIL $1: $2"; failed=$((failed + 1)); }

# One YAML document of the rendered stream, by kind and name suffix ("" = the first of that kind).
document() {
  awk -v kind="$2" -v suffix="$3" '
    /^---/ { if (hit) exit; doc = ""; next }
    { doc = doc $0 "\n" }
    $0 == "kind: " kind { k = 1 }
    /^  name: / && k && !hit { if (suffix == "" || $2 ~ (suffix "$")) hit = 1; else k = 0 }
    END { if (hit) printf "%s", doc }' "$1"
}

# The chart's promises, true for every value set.
check_invariants() {
  local name=$1 rendered=$2 sts grace containers
  sts=$(document "$rendered" StatefulSet "")
  [[ -n $sts ]] || { fail "$name" "no StatefulSet rendered"; return; }
  grace=$(sed -n 's/^ *terminationGracePeriodSeconds: //p' <<<"$sts")
  ((grace > 30)) || fail "$name" "terminationGracePeriodSeconds $grace does not exceed telegate's 30 s drain"
  containers=$(grep -cE '^ +- name: (telegate|merge-config)$' <<<"$sts")
  (($(grep -c 'readOnlyRootFilesystem: true' <<<"$sts") == containers)) ||
    fail "$name" "not every container has readOnlyRootFilesystem: true"
  grep -q 'runAsNonRoot: true' <<<"$sts" || fail "$name" "pod is not runAsNonRoot"
  grep -qx '            - instance_id=$(POD_NAME)' <<<"$sts" || fail "$name" "instance_id is not --set from \$(POD_NAME)"
  grep -A3 -- '- name: POD_NAME' <<<"$sts" | grep -q 'fieldPath: metadata.name' ||
    fail "$name" "POD_NAME does not come from metadata.name"
  grep -q 'path: /healthz, port: http' <<<"$sts" || fail "$name" "no /healthz probe"
  grep -A1 'readinessProbe:' <<<"$sts" | grep -q 'path: /readyz' || fail "$name" "readiness probe is not /readyz"
  if grep -q 'transactional_id_prefix' "$rendered"; then fail "$name" "a fixed transactional_id_prefix was rendered"; fi
  grep -q 'cpu:' <<<"$sts" && grep -q 'memory:' <<<"$sts" || fail "$name" "no resource requests/limits"
}

# Per value set: "# expect-rendered: TEXT" / "# expect-absent: TEXT" lines in the values file.
check_expectations() {
  local name=$1 values=$2 rendered=$3 line text
  while IFS= read -r line; do
    text=${line#*: }
    case $line in
      '# expect-rendered: '*) grep -qF -- "$text" "$rendered" || fail "$name" "expected in the manifests: $text" ;;
      '# expect-absent: '*) if grep -qF -- "$text" "$rendered"; then fail "$name" "not expected in the manifests: $text"; fi ;;
    esac
  done <"$values"
}

# The telegate.yaml the pod reads, through telegate's own validation: the ConfigMap's file, and
# with secretConfig the init container's own command run on ci/secret-fragment.yaml.
check_config() {
  local name=$1 rendered=$2 root=$out/$1.fs merge key config
  [[ -n ${TELEGATE_BIN:-} ]] || return 0
  mkdir -p "$root/etc/telegate/base" "$root/etc/telegate/secret" "$root/run/telegate"
  config=$root/etc/telegate/base/telegate.yaml
  document "$rendered" ConfigMap "" | sed -n '/^  telegate.yaml: |$/,$p' | tail -n +2 | sed 's/^    //' >"$config"
  merge=$(sed -n "s/^ *- '\(.*> \/run\/telegate\/telegate.yaml\)'$/\1/p" "$rendered")
  if [[ -n $merge ]]; then
    # Every path in the command follows a space: run it with them moved under $root.
    key=$(grep -o 'cat /etc/telegate/secret/[^;]*' <<<"$merge")
    cp "$chart/ci/secret-fragment.yaml" "$root/${key#cat /}"
    sh -c "${merge// \// $root/}" || fail "$name" "the init container's merge command failed: $merge"
    config=$root/run/telegate/telegate.yaml
  fi
  if "$TELEGATE_BIN" check-config --config "$config" --set instance_id=telegate-0 >"$out/$name.check" 2>&1; then
    sed "s/^/  $name: telegate check-config: /" "$out/$name.check"
  else
    fail "$name" "telegate check-config refused the rendered config: $(cat "$out/$name.check")"
  fi
}

# The validator must refuse broken manifests, or its passes above mean nothing: each edit of a
# rendered set (sed expression) must fail with the message after "=>".
check_validator_refuses() {
  local rendered=$1 mutation edit expect
  for mutation in \
    's/^  replicas: 3$/  replicas: "3"/ => cannot unmarshal string into Go struct field StatefulSetSpec.spec.replicas' \
    's/^  podManagementPolicy:/  podManagementPolicys:/ => unknown field "spec.podManagementPolicys"' \
    's/^  replicas: 3$/  Replicas: 3/ => unknown field "spec.Replicas"' \
    's/^apiVersion: policy\/v1$/apiVersion: policy\/v1beta1/ => unknown kind "PodDisruptionBudget" in apiVersion "policy/v1beta1"' \
    's/targetPort: http,/targetPort: https,/ => targetPort https/TCP is not a container port' \
    's/^  serviceName: .*/  serviceName: elsewhere/ => spec.serviceName "elsewhere" is not a rendered headless Service' \
    's/{name: data, mountPath/{name: state, mountPath/ => mounts "state", which is no volume'; do
    edit=${mutation%% => *}
    expect=${mutation#* => }
    if sed "$edit" "$rendered" | "$validator" >"$out/mutation" 2>&1; then
      fail validator "accepted a manifest edited with '$edit'"
    elif ! grep -qF -- "$expect" "$out/mutation"; then
      fail validator "refused '$edit' for another reason: $(cat "$out/mutation")"
    fi
  done
}

for values in "$chart"/ci/*-values.yaml; do
  name=$(basename "$values" .yaml)
  before=$failed
  if ! "$helm" lint --strict "${kube[@]}" "$chart" -f "$values" >"$out/$name.lint" 2>&1; then
    fail "$name" "helm lint: $(cat "$out/$name.lint")"
  elif ! "$helm" template telegate "$chart" "${kube[@]}" -f "$values" --namespace iot >"$out/$name.yaml" 2>"$out/$name.err"; then
    fail "$name" "helm template: $(cat "$out/$name.err")"
  elif ! "$validator" <"$out/$name.yaml" >"$out/$name.validate"; then
    fail "$name" "$(cat "$out/$name.validate")"
  else
    sed "s/^/  $name: /" "$out/$name.validate"
    check_invariants "$name" "$out/$name.yaml"
    check_expectations "$name" "$values" "$out/$name.yaml"
    check_config "$name" "$out/$name.yaml"
  fi
  ((failed == before)) && { echo "PASS $name"; passed=$((passed + 1)); }
done

before=$failed
check_validator_refuses "$out/minimal-values.yaml"
((failed == before)) && { echo "PASS validator refuses 7 broken manifests"; passed=$((passed + 1)); }

for values in "$chart"/ci/invalid-*.yaml; do
  name=$(basename "$values" .yaml)
  expect=$(sed -n 's/^# expect: //p' "$values")
  if "$helm" template telegate "$chart" "${kube[@]}" -f "$values" >"$out/$name.out" 2>&1; then
    fail "$name" "rendered, but the schema must refuse it"
  elif ! grep -q 'values don.t meet the specifications of the schema' "$out/$name.out" || ! grep -qF -- "$expect" "$out/$name.out"; then
    fail "$name" "refused, but not by the schema for '$expect': $(cat "$out/$name.out")"
  elif "$helm" lint "${kube[@]}" "$chart" -f "$values" >/dev/null 2>&1; then
    fail "$name" "helm lint accepted it"
  else
    echo "PASS $name (refused: $(grep -m1 -F -- "$expect" "$out/$name.out" | sed 's/^ *//'))"
    passed=$((passed + 1))
  fi
done

echo "chart: $passed passed, $failed failed"
((failed == 0))
