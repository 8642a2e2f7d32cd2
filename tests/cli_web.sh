#!/bin/bash
# The dashboard's files (web/): app.js parses, its pure functions give the expected outputs
# (tests/web_app.test.js under node), no API string can become markup, nothing is loaded from
# another origin, and every element the script looks up by id exists. The daemon serving them is
# checked by cli_serve.sh.
. "$(dirname "$0")/clilib.sh"
WEB=$QE_SRC/web

check() {  # check NAME CONDITION-COMMAND...
  name=$1; shift
  checks=$((checks + 1))
  if "$@"; then echo "ok: $name"; else fail "$name"; fi
}

if command -v node >/dev/null; then
  expect_ok "node --check web/app.js" node --check "$WEB/app.js"
  checks=$((checks + 1))
  if TZ=UTC QE_SRC=$QE_SRC node "$QE_SRC/tests/web_app.test.js" >"$TMP/node.out" 2>&1; then
    echo "ok: web_app.test.js ($(grep -E '^# (pass|fail) ' "$TMP/node.out" | tr '\n' ' '))"
  else
    fail "web_app.test.js"; sed 's/^/    /' "$TMP/node.out" >&2
  fi
else
  echo "skip: node is not on PATH: app.js not parsed nor unit-tested"
fi

# Strings from the API go into the page as text: no HTML parsing sink may appear in the script.
check "app.js uses no innerHTML/outerHTML/insertAdjacentHTML/document.write/eval" \
  bash -c '! grep -nE "innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function" "$1"' _ "$WEB/app.js"
# The daemon may run offline, and the page's CSP allows only its own origin.
check "web/ references no other origin" \
  bash -c '! grep -nE "(src|href|url)\s*[=(]\s*[\"'\'']?(https?:)?//|@import" "$1"/index.html "$1"/style.css "$1"/app.js' _ "$WEB"
check "index.html loads app.js and style.css" \
  bash -c 'grep -q "<script src=\"app.js\"" "$1" && grep -q "<link rel=\"stylesheet\" href=\"style.css\">" "$1"' _ "$WEB/index.html"
# Every id the script looks up ($('id'), replace('id', ...)) is in the page or created by the script.
grep -oE "(\\\$|replace)\('[a-z0-9-]+'" "$WEB/app.js" | sed -E "s/^.*\('//; s/'$//" | sort -u >"$TMP/ids"
missing=
while read -r id; do
  grep -q "id=\"$id\"" "$WEB/index.html" || grep -q "id: '$id'" "$WEB/app.js" || missing="$missing $id"
done <"$TMP/ids"
check "the $(wc -l <"$TMP/ids") ids app.js looks up exist${missing:+ (missing:$missing)}" [ -z "$missing" -a -s "$TMP/ids" ]
finish
