# Shared shell helpers for the IPA ramdisk init scripts (sourced, POSIX sh / BusyBox ash).

IPA_RUN_DIR=/run/ipa
IPA_CMDLINE_ENV=$IPA_RUN_DIR/cmdline.env

# ipa_log MESSAGE... — one line on the console (init's stdout is the console).
ipa_log() {
	echo "ipa-init: $*"
}

# ipa_quote VALUE — print VALUE as a single-quoted shell word.
ipa_quote() {
	printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"
}

# ipa_parse_cmdline [FILE] — turn the ipa-* and BOOTIF kernel arguments of FILE
# (/proc/cmdline) into shell assignments on stdout: ipa-api-url=X becomes ipa_api_url='X'.
# A key given more than once keeps its last value, as IPA's own parser does.
ipa_parse_cmdline() {
	set -f
	# shellcheck disable=SC2046
	set -- $(cat "${1:-/proc/cmdline}")
	set +f
	for arg; do
		case "$arg" in
		ipa-*=* | BOOTIF=*)
			key=${arg%%=*}
			val=${arg#*=}
			;;
		ipa-*)
			# A bare flag (ipa-debug) means "1".
			key=$arg
			val=1
			;;
		*) continue ;;
		esac
		case "$key" in
		*[!A-Za-z0-9_-]*) continue ;;
		esac
		key=$(printf '%s' "$key" | tr 'A-Z-' 'a-z_')
		printf '%s=%s\n' "$key" "$(ipa_quote "$val")"
	done
}

# ipa_load_params — source the parsed kernel arguments (written by S00ipa-early).
ipa_load_params() {
	# shellcheck source=/dev/null
	[ -r "$IPA_CMDLINE_ENV" ] && . "$IPA_CMDLINE_ENV"
	return 0
}

# ipa_is_true VALUE — IPA's notion of a true flag (1, true, yes, on; any case).
ipa_is_true() {
	case "$(printf '%s' "$1" | tr 'A-Z' 'a-z')" in
	1 | true | yes | on) return 0 ;;
	esac
	return 1
}

# ipa_bootif_mac — the MAC from BOOTIF=01-aa-bb-cc-dd-ee-ff (PXELINUX/iPXE form), lower case
# with colons, or nothing.
ipa_bootif_mac() {
	[ -n "${bootif:-}" ] || return 0
	printf '%s' "$bootif" | tr 'A-Z-' 'a-z:' | sed -n 's/^01://p; t; s/^\([0-9a-f:]\{17\}\)$/\1/p'
}
