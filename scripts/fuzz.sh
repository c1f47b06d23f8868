#!/usr/bin/env bash
# fuzz.sh runs every Go fuzz target of the repository, one after another or
# a few at a time, and prints a table of what each did.
#
# Usage: scripts/fuzz.sh [-j N] [-l] [PATTERN]
#
#   -j N     run N targets at a time (default $JOBS, else 1). Each target
#            uses $PARALLEL fuzzing workers: N*PARALLEL cores are busy.
#   -l       list the targets, as PACKAGE/NAME, and exit.
#   PATTERN  run only the targets whose PACKAGE/NAME matches this extended
#            regular expression (grep -E), e.g. 'server/' or 'FuzzRead$'.
#
# Environment:
#   FUZZTIME  how long each target fuzzes, as go test -fuzztime takes it
#             (default 10m; 100000x is a number of executions instead).
#   PARALLEL  go test -parallel, the fuzzing workers of each target
#             (default 1).
#   FUZZLOGS  folder for the full output of each target (default: a new
#             temporary folder, named at the end).
#   GO        the go command (default go).
#
# The targets are the functions "func FuzzXxx(f *testing.F)" of the
# *_test.go files. For each one the script runs, from the repository root,
#
#   $GO test -run '^$' -fuzz '^NAME$' -fuzztime $FUZZTIME -parallel $PARALLEL ./PACKAGE
#
# and prints a row: package, target, WALL (the time of the whole go test,
# build included), then from the last "fuzz: elapsed: D, execs: N (R/sec),
# new interesting: M (total: T)" line of Go's output FUZZED (D), EXECS (N),
# EXECS/S (N/D), NEW (M) and CORPUS (T), and the RESULT: PASS, FAIL, or
# FLAKE. FLAKE is a bare "context deadline exceeded" as -fuzztime runs out
# with no failing input written: a race in Go's fuzzing coordinator before
# Go 1.27 (go.dev/issue/75804), not a bug of the target, so it does not
# count as a failure (a count, FUZZTIME=1000000x, avoids it). A final row
# adds up the executions.
#
# An input that makes a target fail stays where Go writes it,
# PACKAGE/testdata/fuzz/NAME/, ready to be committed as a regression test;
# the script lists those files after the table.
#
# Exit status: 0 if every target passed or flaked; 1 if any failed or was
# not run, or if none matched; 2 for a usage error. Ctrl-C stops the targets
# (Go ends fuzzing cleanly) and still prints the table of what ran.
#
# Example: FUZZTIME=30s scripts/fuzz.sh -j 2 'npyarray|checkpoint'

set -u -o pipefail

GO=${GO:-go}
FUZZTIME=${FUZZTIME:-10m}
PARALLEL=${PARALLEL:-1}
jobs=${JOBS:-1}
list=0

# usage prints the comment above.
usage() {
	sed -n '2,/^$/s/^# \{0,1\}//p' "$0"
}

while getopts "j:lh" opt; do
	case $opt in
	j) jobs=$OPTARG ;;
	l) list=1 ;;
	h) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
if [ $# -gt 1 ]; then
	usage >&2
	exit 2
fi
pattern=${1:-}
if ! [[ $jobs =~ ^[1-9][0-9]*$ && $PARALLEL =~ ^[1-9][0-9]*$ ]]; then
	echo "fuzz.sh: -j ($jobs) and PARALLEL ($PARALLEL) must be positive integers" >&2
	exit 2
fi

cd "$(dirname "$0")/.." || exit 2

# targets lists PACKAGE/NAME, one a line, sorted.
targets() {
	grep -rE --include='*_test.go' -o '^func Fuzz[A-Za-z0-9_]+\([A-Za-z_][A-Za-z0-9_]* \*testing\.F\)' . |
		grep -v -e '/testdata/' -e '/vendor/' |
		sed -E 's#^\./(.*)/[^/]+_test\.go:func (Fuzz[A-Za-z0-9_]+)\(.*#\1/\2#' |
		sort -u
}

mapfile -t all < <(targets)
selected=()
for t in "${all[@]}"; do
	if [ -z "$pattern" ] || grep -qE -- "$pattern" <<<"$t"; then
		selected+=("$t")
	fi
done
if [ $list = 1 ]; then
	printf '%s\n' "${selected[@]}"
	exit 0
fi
if [ ${#selected[@]} = 0 ]; then
	echo "fuzz.sh: no fuzz target matches '$pattern'" >&2
	exit 1
fi

logs=${FUZZLOGS:-$(mktemp -d "${TMPDIR:-/tmp}/latent-fuzz.XXXXXX")}
mkdir -p "$logs" || exit 2

# seconds converts a Go duration as the fuzzer prints it (1h2m3s, 45s) to
# seconds.
seconds() {
	local d=$1 n=0
	[[ $d =~ ([0-9]+)h ]] && n=$((n + 3600 * BASH_REMATCH[1]))
	[[ $d =~ ([0-9]+)m ]] && n=$((n + 60 * BASH_REMATCH[1]))
	[[ $d =~ ([0-9]+)s ]] && n=$((n + BASH_REMATCH[1]))
	echo $n
}

# run fuzzes target number $1, PACKAGE/NAME $2, and writes its row to
# $logs/$1.row: package, target, wall seconds, fuzzing seconds, execs,
# execs/s, new interesting, corpus total, result.
run() {
	local i=$1 pkg=${2%/*} name=${2##*/}
	local log="$logs/$i-${pkg//\//_}-$name.log"
	local start=$SECONDS status=PASS
	echo "fuzz.sh: $pkg $name: fuzzing for $FUZZTIME ($log)" >&2
	$GO test -run '^$' -fuzz "^$name\$" -fuzztime "$FUZZTIME" -parallel "$PARALLEL" "./$pkg" >"$log" 2>&1 || status=FAIL
	# Go before 1.27 can fail a target with a bare "context deadline
	# exceeded" as -fuzztime runs out, a race in its fuzzing coordinator
	# (go.dev/issue/75804) that writes no failing input.
	if [ $status = FAIL ] && ! grep -q 'Failing input written to' "$log" &&
		grep -qx '[[:space:]]*context deadline exceeded' "$log"; then
		status=FLAKE
	fi
	local wall=$((SECONDS - start))
	local last fuzzed=- execs=- rate=- new=- total=-
	last=$(grep -E '^fuzz: elapsed: [0-9hms]+, execs: [0-9]+' "$log" | tail -n 1)
	if [ -n "$last" ]; then
		fuzzed=$(seconds "$(sed -E 's/^fuzz: elapsed: ([0-9hms]+),.*/\1/' <<<"$last")")
		execs=$(sed -E 's/.*execs: ([0-9]+).*/\1/' <<<"$last")
		new=$(sed -nE 's/.*new interesting: ([0-9]+).*/\1/p' <<<"$last")
		total=$(sed -nE 's/.*\(total: ([0-9]+)\).*/\1/p' <<<"$last")
		[ "$fuzzed" -gt 0 ] && rate=$((execs / fuzzed))
	fi
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$pkg" "$name" "$wall" "$fuzzed" "$execs" "$rate" "${new:--}" "${total:--}" "$status" >"$logs/$i.row"
	echo "fuzz.sh: $pkg $name: $status, $execs execs in ${fuzzed}s of fuzzing" >&2
}

interrupted=0
trap 'interrupted=1' INT
running=0
for i in "${!selected[@]}"; do
	[ $interrupted = 1 ] && break
	if [ $running -ge "$jobs" ]; then
		wait -n
		running=$((running - 1))
	fi
	run "$i" "${selected[$i]}" &
	running=$((running + 1))
done
# wait returns early (with a status over 128) when a signal arrives: wait
# again until every target is done.
while :; do
	wait
	[ $? -gt 128 ] || break
done
trap - INT

# duration formats $1 seconds as 10m05s; - stays -.
duration() {
	if [[ $1 =~ ^[0-9]+$ ]]; then
		printf '%dm%02ds' $(($1 / 60)) $(($1 % 60))
	else
		echo "$1"
	fi
}

failed=0
flaked=0
sum=0
fmt='%-12s %-26s %8s %8s %14s %9s %6s %7s  %s\n'
echo
printf "$fmt" PACKAGE TARGET WALL FUZZED EXECS EXECS/S NEW CORPUS RESULT
for i in "${!selected[@]}"; do
	row="$logs/$i.row"
	if [ ! -f "$row" ]; then
		printf "$fmt" "${selected[$i]%/*}" "${selected[$i]##*/}" - - - - - - "NOT RUN"
		failed=$((failed + 1))
		continue
	fi
	IFS=$'\t' read -r pkg name wall fuzzed execs rate new total status <"$row"
	printf "$fmt" "$pkg" "$name" "$(duration "$wall")" "$(duration "$fuzzed")" "$execs" "$rate" "$new" "$total" "$status"
	case $status in
	PASS) ;;
	FLAKE) flaked=$((flaked + 1)) ;;
	*) failed=$((failed + 1)) ;;
	esac
	[[ $execs =~ ^[0-9]+$ ]] && sum=$((sum + execs))
done
printf "$fmt" TOTAL "${#selected[@]} targets" "" "" "$sum" "" "" "" "$failed failed, $flaked flaked"
echo
echo "FUZZTIME=$FUZZTIME PARALLEL=$PARALLEL jobs=$jobs; logs in $logs"
if [ $flaked -gt 0 ]; then
	echo "FLAKE: go test failed with only \"context deadline exceeded\" as -fuzztime ran out and"
	echo "wrote no failing input: Go's fuzzing coordinator race (go.dev/issue/75804, fixed in"
	echo "Go 1.27), not a bug of the target. Its counts are valid. A count such as FUZZTIME=1000000x"
	echo "avoids it."
fi

crashers=$(grep -h 'Failing input written to' "$logs"/*.log 2>/dev/null | sed -E 's/.*Failing input written to //')
if [ -n "$crashers" ]; then
	echo
	echo "Failing inputs (commit them as regression tests once fixed):"
	# Go names them relative to the package folder.
	for i in "${!selected[@]}"; do
		pkg=${selected[$i]%/*}
		grep -h 'Failing input written to' "$logs/$i-"*.log 2>/dev/null |
			sed -E "s#.*Failing input written to #  $pkg/#"
	done
fi
if [ $failed -gt 0 ] || [ $interrupted = 1 ]; then
	exit 1
fi
exit 0
