# cache-dir.sh — sourced by the scripts that cache: ipa_oci_cache_dir prints ipa-oci's cache
# directory by the rule of internal/cachedir (Go) and README: $IPA_OCI_CACHE if set, else
# $XDG_CACHE_HOME/ipa-oci if XDG_CACHE_HOME is absolute, else $HOME/.cache/ipa-oci.
# TestCacheDirScriptAgreesWithGo (scripts_test.go) holds the two rules together.
ipa_oci_cache_dir() {
	local xdg=${XDG_CACHE_HOME:-}
	if [ -n "${IPA_OCI_CACHE:-}" ]; then
		printf '%s\n' "$IPA_OCI_CACHE"
	elif [ "${xdg#/}" != "$xdg" ]; then
		printf '%s/ipa-oci\n' "${xdg%/}"
	elif [ -n "${HOME:-}" ]; then
		printf '%s/.cache/ipa-oci\n' "${HOME%/}"
	else
		echo "no cache directory: set IPA_OCI_CACHE (or HOME)" >&2
		return 1
	fi
}
