# Shared helpers of the tests/cli_*.sh scripts (sourced, not a test itself). Environment from ctest: QE_BIN,
# QE_SHARED, QE_BUILD. Sanitizer reports get distinct exit codes so they never pass for an
# expected failure.
set -u
export ASAN_OPTIONS="${ASAN_OPTIONS:-}:exitcode=99"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-}:halt_on_error=1:exitcode=98"
TMP=$(mktemp -d "${QE_BUILD}/tmp.cli.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
fails=0
checks=0

fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

# expect_fail NAME PATTERN CMD...: the command must exit with 1 or 2, print PATTERN
# (extended regex) on stderr, and no sanitizer report.
expect_fail() {
  name=$1; pat=$2; shift 2
  checks=$((checks + 1))
  "$@" >"$TMP/out" 2>"$TMP/err"
  rc=$?
  if [ $rc -ne 1 ] && [ $rc -ne 2 ]; then fail "$name: exit status $rc (want 1 or 2)"; sed 's/^/    /' "$TMP/err" | head -20 >&2; return; fi
  if grep -qE 'Sanitizer|runtime error:' "$TMP/err"; then fail "$name: sanitizer report"; head -20 "$TMP/err" >&2; return; fi
  if ! grep -qE -- "$pat" "$TMP/err"; then fail "$name: stderr lacks /$pat/:"; sed 's/^/    /' "$TMP/err" >&2; return; fi
  echo "ok: $name: $(grep -E -- "$pat" "$TMP/err" | head -1)"
}

# expect_ok NAME CMD...: exit 0 and no sanitizer report; stdout kept in $TMP/out.
expect_ok() {
  name=$1; shift
  checks=$((checks + 1))
  "$@" >"$TMP/out" 2>"$TMP/err"
  rc=$?
  if [ $rc -ne 0 ] || grep -qE 'Sanitizer|runtime error:' "$TMP/err"; then
    fail "$name: exit status $rc"; sed 's/^/    /' "$TMP/err" | head -20 >&2; return 1
  fi
  echo "ok: $name"
}

finish() {
  echo "$checks checks, $fails failed"
  [ $fails -eq 0 ]
}
