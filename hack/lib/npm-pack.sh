# Sourced by the setup scripts that take a file from an npm package
# (setup-onnxruntime.sh, setup-redocly.sh).

# npm_pack_verified NAME VERSION INTEGRITY DIR fetches the tarball of
# NAME@VERSION into DIR with `npm pack` (nothing is installed, so no
# package script runs), checks it against INTEGRITY (npm's
# "sha512-<base64>" form, pinned by the caller) and prints its path.
# Messages go to stderr; it fails on any mismatch.
npm_pack_verified() {
	local name=$1 version=$2 integrity=$3 dir=$4 file tgz got
	command -v npm >/dev/null || { echo "npm is needed to fetch $name (Debian: apt-get install npm)" >&2; return 1; }
	command -v openssl >/dev/null || { echo "openssl is needed to check the package integrity" >&2; return 1; }
	file=$(cd "$dir" && npm pack --silent "$name@$version" 2>"$dir/npm.log") ||
		{ cat "$dir/npm.log" >&2; echo "npm pack $name@$version failed" >&2; return 1; }
	tgz="$dir/$(printf '%s\n' "$file" | tail -n 1)"
	[[ -f "$tgz" ]] || { echo "npm pack did not produce $tgz" >&2; return 1; }
	got="sha512-$(openssl dgst -sha512 -binary "$tgz" | openssl base64 -A)"
	[[ "$got" == "$integrity" ]] || { echo "integrity mismatch for $tgz: want $integrity, got $got" >&2; return 1; }
	printf '%s\n' "$tgz"
}
