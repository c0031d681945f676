#!/usr/bin/env bash
# Install check: `meson install` a build into a scratch DESTDIR, then build and
# run tests/install/consumer.cpp against the installed copy only, twice:
# found through its ringflow.pc (pkg-config --cflags --libs ringflow, with the
# prefix rewritten to point into the DESTDIR), and with CMake through its
# package config (tests/install/CMakeLists.txt: find_package(ringflow CONFIG)
# with CMAKE_PREFIX_PATH at the DESTDIR prefix). Without cmake the CMake half
# is skipped with a message.
#
#   bash tests/install/check_install.sh BUILD_DIR
#
# The build dir must be built already (`meson test` builds before it runs
# this; `meson install --no-rebuild` is used so a test never runs ninja).
# A sanitizer build (b_sanitize != none) is checked too: the consumer is
# compiled with the build's compiler, its cpp_args/cpp_link_args and
# -fsanitize=<b_sanitize>, since libringflow.a needs the sanitizer runtime.
# Exit: 0 ok, 1 failure, 2 usage, 77 skipped (meson's skip code).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if (($# != 1)); then
  echo "usage: check_install.sh BUILD_DIR" >&2
  exit 2
fi
build=$(cd "$1" && pwd)
if [[ ! -f $build/meson-info/intro-buildoptions.json ]]; then
  echo "check_install: $build is not a configured meson build dir" >&2
  exit 2
fi

for tool in meson pkg-config python3; do
  if ! command -v "$tool" >/dev/null; then
    echo "check_install: skipped: $tool is not installed"
    exit 77
  fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ringflow-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
dest=$tmp/dest
mkdir -p "$dest"

fail() {
  echo "check_install: FAILED: $*" >&2
  exit 1
}

# ---- what the build was configured with ----------------------------------------
# One "key=value" per line: b_sanitize, cpp_args, cpp_link_args (space-joined)
# and the C++ compiler command of the library target.
meson introspect --buildoptions "$build" >"$tmp/options.json"
meson introspect --targets "$build" >"$tmp/targets.json"
config=$(python3 - "$tmp/options.json" "$tmp/targets.json" <<'PY'
import json, shlex, sys
opts = {o["name"]: o["value"] for o in json.load(open(sys.argv[1]))}
def joined(v):
    return " ".join(shlex.quote(x) for x in v) if isinstance(v, list) else str(v)
print("b_sanitize=" + str(opts.get("b_sanitize", "none")))
print("cpp_args=" + joined(opts.get("cpp_args", [])))
print("cpp_link_args=" + joined(opts.get("cpp_link_args", [])))
cxx = ""
# libringflow is linked whole from the layers' objects and has no sources of
# its own: take the compiler any C++ source of the build was compiled with.
for t in json.load(open(sys.argv[2])):
    for s in t.get("target_sources", []):
        if not cxx and s.get("language") == "cpp" and s.get("compiler"):
            cxx = " ".join(shlex.quote(x) for x in s["compiler"])
print("cxx=" + cxx)
PY
)
get() { sed -n "s/^$1=//p" <<<"$config"; }
sanitize=$(get b_sanitize)
cxx=$(get cxx)
[[ -n $cxx ]] || fail "cannot tell which C++ compiler built $build (meson introspect --targets lists none)"

extra_cflags=()
extra_ldflags=()
if [[ $sanitize != none && -n $sanitize ]]; then
  # The installed archive is instrumented: the consumer links the same
  # runtime. -fsanitize goes first, as meson puts it, so that the build's own
  # args (e.g. -fno-sanitize=function, see scripts/test.sh) still win.
  extra_cflags=("-fsanitize=$sanitize")
  extra_ldflags=("-fsanitize=$sanitize")
  eval "extra_cflags+=($(get cpp_args))"
  eval "extra_ldflags+=($(get cpp_link_args))"
fi

# ---- install -----------------------------------------------------------------------
if ! meson install -C "$build" --no-rebuild --destdir "$dest" >"$tmp/install.log" 2>&1; then
  cat "$tmp/install.log" >&2
  fail "meson install --destdir failed (is $build built? run ninja -C $build first)"
fi

mapfile -t pcs < <(find "$dest" -name ringflow.pc -path '*/pkgconfig/*')
((${#pcs[@]} == 1)) || fail "expected one installed ringflow.pc under $dest, found ${#pcs[@]}"
pcdir=$(dirname "${pcs[0]}")
export PKG_CONFIG_PATH=$pcdir${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}

# The .pc says prefix=/usr/local (or whatever --prefix was); point it into
# the DESTDIR. (--define-prefix guesses the prefix from the .pc's path and
# gets multiarch libdirs such as lib/x86_64-linux-gnu wrong.)
prefix=$(pkg-config --variable=prefix ringflow) || fail "pkg-config cannot read $pcs"
[[ -n $prefix ]] || fail "ringflow.pc has no prefix variable"
flags=$(pkg-config --define-variable=prefix="$dest$prefix" --cflags --libs ringflow) ||
  fail "pkg-config --cflags --libs ringflow failed"
read -r -a pc_flags <<<"$flags"

# Make sure the flags really point at the installed copy, not the source tree.
flags_str=" ${pc_flags[*]} "
[[ $flags_str == *" -I$dest"* ]] || fail "pkg-config cflags do not point into the DESTDIR: ${pc_flags[*]}"
[[ $flags_str == *" -L$dest"* ]] || fail "pkg-config libs do not point into the DESTDIR: ${pc_flags[*]}"
[[ -f $(find "$dest" -name ringflow.hpp -path '*/include/ringflow/*' | head -1) ]] ||
  fail "ringflow/ringflow.hpp was not installed"

# ---- build and run the consumer --------------------------------------------------
eval "cxx_cmd=($cxx)"
cmd=("${cxx_cmd[@]}" "${extra_cflags[@]}" -o "$tmp/consumer" "$here/consumer.cpp" "${pc_flags[@]}" "${extra_ldflags[@]}")
echo "check_install: build $build (b_sanitize=$sanitize)"
echo "check_install: ${cmd[*]}"
# Compile from inside the scratch dir, away from the source and build trees
# (only the pkg-config flags may lead to headers).
if ! (cd "$tmp" && "${cmd[@]}") >"$tmp/compile.log" 2>&1; then
  cat "$tmp/compile.log" >&2
  if [[ $sanitize != none ]] && grep -q 'Cannot represent a difference across sections' "$tmp/compile.log"; then
    # clang 14 + -fsanitize=function on coroutine frames: a compiler bug, not
    # an install problem (scripts/test.sh configures -fno-sanitize=function).
    echo "check_install: skipped: clang cannot compile coroutines with -fsanitize=$sanitize here;" \
      "configure the build with -Dcpp_args=-fno-sanitize=function -Dcpp_link_args=-fno-sanitize=function"
    exit 77
  fi
  fail "the consumer did not compile against the installed ringflow"
fi

set +e
"$tmp/consumer"
rc=$?
set -e
((rc == 0)) || fail "the consumer exited $rc (expected 0: block_on returned 42)"
echo "check_install: pkg-config consumer OK"

# ---- the same consumer with CMake -------------------------------------------------
if ! command -v cmake >/dev/null; then
  echo "check_install: CMake consumer skipped: cmake is not installed (scripts/setup.sh --tests installs it)"
  echo "check_install: OK"
  exit 0
fi
mapfile -t cmake_configs < <(find "$dest" -name ringflowConfig.cmake)
((${#cmake_configs[@]} == 1)) || fail "expected one installed ringflowConfig.cmake under $dest, found ${#cmake_configs[@]}"
[[ -n $(find "$dest" -name ringflowConfigVersion.cmake) ]] || fail "ringflowConfigVersion.cmake was not installed"

# The compiler command may start with a launcher (ccache g++): CMake takes
# the compiler alone and the rest as its launcher.
cmake_compiler=("-DCMAKE_CXX_COMPILER=${cxx_cmd[-1]}")
if ((${#cxx_cmd[@]} > 1)); then
  launcher=$(IFS=';'; echo "${cxx_cmd[*]:0:${#cxx_cmd[@]}-1}")
  cmake_compiler+=("-DCMAKE_CXX_COMPILER_LAUNCHER=$launcher")
fi
cmake_cmd=(cmake -S "$here" -B "$tmp/cmake-build" "${cmake_compiler[@]}"
  "-DCMAKE_PREFIX_PATH=$dest$prefix"
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF
  "-DCMAKE_CXX_FLAGS=${extra_cflags[*]}" "-DCMAKE_EXE_LINKER_FLAGS=${extra_ldflags[*]}")
echo "check_install: ${cmake_cmd[*]}"
if ! (cd "$tmp" && "${cmake_cmd[@]}") >"$tmp/cmake.log" 2>&1; then
  cat "$tmp/cmake.log" >&2
  fail "cmake could not configure the consumer with find_package(ringflow CONFIG)"
fi
# Make sure CMake found the installed copy, not one elsewhere on the machine.
grep -q "ringflow .* from $dest" "$tmp/cmake.log" || { cat "$tmp/cmake.log" >&2; fail "find_package(ringflow) did not find the copy in the DESTDIR"; }
if ! cmake --build "$tmp/cmake-build" >"$tmp/cmake-build.log" 2>&1; then
  cat "$tmp/cmake-build.log" >&2
  fail "the CMake consumer did not build against the installed ringflow"
fi
set +e
"$tmp/cmake-build/consumer"
rc=$?
set -e
((rc == 0)) || fail "the CMake consumer exited $rc (expected 0: block_on returned 42)"
echo "check_install: CMake consumer OK"
echo "check_install: OK"
