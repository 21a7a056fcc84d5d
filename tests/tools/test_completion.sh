#!/bin/bash
# test_completion.sh - the bash completion of `shmbus` (tools/shmbus/
# shmbus.bash), sourced into this shell as bash-completion would: it
# registers itself, offers the verbs, a verb's options, and the live topics
# of a real bus (with its broker, started by `shmbus pub`), and meson
# installs it where bash-completion looks.
#   test_completion.sh SCRIPT BUILD_DIR    (SHMBUS_CLI: the tool)
set -u
script=$1 build=$2
passed=0 failed=0
check() { # NAME CONDITION...
	local name=$1; shift
	if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAILED: $name"; fi
}
has() { # WORD in COMPREPLY
	local w; for w in "${COMPREPLY[@]}"; do [ "$w" = "$1" ] && return 0; done; return 1
}
lacks() { ! has "$1"; }
# Completes the words given (the last one is the one being typed).
complete_line() {
	COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMPREPLY=()
	_shmbus
}

# The completion calls `shmbus` as the line names it: the built one here.
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
ln -s "$SHMBUS_CLI" "$dir/shmbus"; PATH=$dir:$PATH
bus=t-compl-$$

source "$script"
check "complete -p shmbus" [ "$(complete -p shmbus)" = "complete -F _shmbus shmbus" ]

complete_line shmbus ""
check "verbs" has echo; check "verbs: record" has record; check "verbs: type" has type
complete_line shmbus e
check "verbs starting with e" [ "${COMPREPLY[*]}" = echo ]
complete_line shmbus --b
check "global --bus" has --bus
complete_line shmbus echo --bus "$bus" --f
check "echo's --field" has --field; check "echo's --full" has --full
complete_line shmbus record -o x.mcap --ex
check "record's --exclude" has --exclude
complete_line shmbus mcap ""
check "mcap subcommands" has recover

# Live topics of a bus: none before it has a broker...
complete_line shmbus echo --bus "$bus" ""
check "no topics without a broker" [ ${#COMPREPLY[@]} -eq 0 ]
for t in /camera/image_raw imu/front imu/rear; do
	timeout 60 shmbus pub --bus "$bus" "$t" shmbus.msgs.Imu '{}' -q || failed=$((failed + 1))
done
complete_line shmbus echo --bus "$bus" ""
check "echo <TAB>: all topics" [ "${COMPREPLY[*]}" = "/camera/image_raw imu/front imu/rear" ]
complete_line shmbus --bus "$bus" hz imu/
check "hz imu/<TAB>" [ "${COMPREPLY[*]}" = "imu/front imu/rear" ]
complete_line shmbus echo --bus="$bus" /cam
check "--bus=NAME too" [ "${COMPREPLY[*]}" = "/camera/image_raw" ]
complete_line shmbus echo --bus "$bus" imu/front ""
check "one topic for echo" [ ${#COMPREPLY[@]} -eq 0 ]
complete_line shmbus --bus ""
check "bus names: the running broker" has "$bus"
timeout 60 shmbus stop --bus "$bus" || failed=$((failed + 1))

# meson installs it as bash-completion's "shmbus".
installed=$(meson introspect --installed "$build" 2>/dev/null | grep -o '"[^"]*/completions/shmbus"')
check "meson install puts it in completions/shmbus" [ -n "$installed" ]

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
