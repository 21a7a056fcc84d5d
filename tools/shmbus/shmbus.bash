# Bash completion for the `shmbus` command: its verbs, each verb's options
# (read from `shmbus VERB --help`, so they never drift from the tool), the
# live topics of the bus named on the line (`shmbus topics`), bus names
# (the sockets of running brokers), and files where a verb takes files.
# Installed as "shmbus" into bash-completion's directory; standalone (it
# needs none of bash-completion's helpers), so `source` also works.

# The bus named on the command line so far (--bus NAME or --bus=NAME).
_shmbus_bus_arg()
{
	local i
	for ((i = 1; i < COMP_CWORD; i++)); do
		case "${COMP_WORDS[i]}" in
		--bus) printf -- '--bus\n%s\n' "${COMP_WORDS[i + 1]}"; return ;;
		--bus=*) printf -- '%s\n' "${COMP_WORDS[i]}"; return ;;
		esac
	done
}

_shmbus_topics()
{
	local -a bus
	mapfile -t bus < <(_shmbus_bus_arg)
	"${COMP_WORDS[0]}" "${bus[@]}" topics 2>/dev/null | tail -n +2 | cut -d' ' -f1
}

_shmbus_buses()
{
	local dir=${SHMBUS_RUNTIME_DIR:-${XDG_RUNTIME_DIR:+$XDG_RUNTIME_DIR/shmbus}}
	dir=${dir:-/tmp/shmbus-$(id -u)}
	local s
	for s in "$dir"/*.sock; do
		[ -S "$s" ] && { s=${s##*/}; printf '%s\n' "${s%.sock}"; }
	done
}

_shmbus_files()
{
	local IFS=$'\n'
	compopt -o filenames 2>/dev/null
	COMPREPLY+=($(compgen -f -X "!$1" -- "$2") $(compgen -d -- "$2"))
}

_shmbus()
{
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
	local cmd=${COMP_WORDS[0]} verb="" i nargs=0 IFS=$'\n'
	COMPREPLY=()
	if [ "$prev" = "--bus" ]; then
		COMPREPLY=($(compgen -W "$(_shmbus_buses)" -- "$cur"))
		return
	fi
	# The verb: the first word that is not an option or --bus's value;
	# nargs counts the words after it that are not options.
	for ((i = 1; i < COMP_CWORD; i++)); do
		case "${COMP_WORDS[i]}" in
		--bus) ((i++)) ;;
		-*) ;;
		*) if [ -z "$verb" ]; then verb=${COMP_WORDS[i]}; else ((nargs++)); fi ;;
		esac
	done
	if [ -z "$verb" ]; then
		if [[ "$cur" == -* ]]; then
			COMPREPLY=($(compgen -W $'--bus\n--help\n--version' -- "$cur"))
		else
			COMPREPLY=($(compgen -W "$("$cmd" --help 2>/dev/null |
				awk '/^verbs:/ { v = 1; next } v && /^  [a-z]/ { print $1 }')" -- "$cur"))
		fi
		return
	fi
	if [[ "$cur" == -* ]]; then
		local help
		if [ "$verb" = mcap ]; then help=$("$cmd" mcap --help 2>/dev/null)
		else help=$("$cmd" "$verb" --help 2>/dev/null); fi
		COMPREPLY=($(compgen -W "$(printf '%s\n' "$help" |
			grep -oE -- '(^|[][ ,|])--?[a-zA-Z][a-zA-Z-]*' | grep -oE -- '--?[a-zA-Z-]+' |
			sort -u)" -- "$cur"))
		return
	fi
	case "$prev" in
	-o|--output) _shmbus_files '*.mcap' "$cur"; return ;;
	--descriptor-set) _shmbus_files '*' "$cur"; return ;;
	--compression) COMPREPLY=($(compgen -W $'zstd\nlz4\nnone' -- "$cur")); return ;;
	--exclude|--topics|--field|--remap) ;;
	-n|--count|-r|--rate|-w|--window|--last|--duration|--delay|--start|--split-size|\
	--split-duration|--chunk-size|--wait-subscribers) return ;;
	esac
	case "$verb" in
	info|type|echo|hz|bw)
		[ "$nargs" -eq 0 ] && COMPREPLY=($(compgen -W "$(_shmbus_topics)" -- "$cur")) ;;
	pub)
		if [ "$nargs" -eq 0 ]; then
			COMPREPLY=($(compgen -W "$(_shmbus_topics)" -- "$cur"))
		fi ;;
	record)
		COMPREPLY=($(compgen -W "$(_shmbus_topics)" -- "$cur")) ;;
	play)
		_shmbus_files '*.mcap' "$cur" ;;
	mcap)
		if [ "$nargs" -eq 0 ]; then
			COMPREPLY=($(compgen -W $'info\ncat\nrecover' -- "$cur"))
		else
			_shmbus_files '*.mcap' "$cur"
		fi ;;
	esac
}

complete -F _shmbus shmbus
