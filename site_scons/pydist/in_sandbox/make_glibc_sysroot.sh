#!/bin/sh
# Generate a glibc sysroot for one architecture and one glibc floor from the ziglang wheel; run in the sandbox.
#
#   make_glibc_sysroot.sh ZIG ARCH GLIBC OUT
#
# ZIG is the zig program of the unpacked wheel (its lib/ beside it), ARCH x86_64 or aarch64, GLIBC the floor
# (2.17), OUT an absolute path, a new or empty directory that receives usr/include and usr/lib/<multiarch>.
# llvm-objcopy, llvm-ar and clang come from PATH (the pinned compiler).
#
# zig writes the stub libraries (every symbol of the floor's ABI lists, at its newest version <= the floor), the
# start files and libc_nonshared.a into its cache while it links a trivial program; they are taken from there
# and made free of that cache's paths. The headers are zig's glibc and kernel headers, merged.
set -eu

die() {
    echo "make_glibc_sysroot: $*" >&2
    exit 1
}

[ $# -eq 4 ] || die "usage: make_glibc_sysroot.sh ZIG ARCH GLIBC OUT"
zig=$1 arch=$2 glibc=$3 out=$4

case $glibc in
2.[0-9] | 2.[1-9][0-9]) ;;
*) die "glibc floor '$glibc' is not of the form 2.N" ;;
esac
# Per architecture: zig's name for its header directories, the dynamic loader's real name, the linker script's
# output format, glibc's first symbol version (the one its oldest functions carry).
case $arch in
x86_64) headers=x86 loader=ld-linux-x86-64.so.2 format=elf64-x86-64 first_version=GLIBC_2.2.5 ;;
aarch64) headers=aarch64 loader=ld-linux-aarch64.so.1 format=elf64-littleaarch64 first_version=GLIBC_2.17 ;;
*) die "unsupported architecture '$arch' (x86_64 or aarch64)" ;;
esac
multiarch=$arch-linux-gnu
zig_lib=${zig%/*}/lib
libdir=usr/lib/$multiarch
work=${TMPDIR:?}/glibc-sysroot
# The stub libraries, and the sonames they get here.
stubs="libc.so.6 libm.so.6 libpthread.so.0 libdl.so.2 librt.so.1 libutil.so.1 libresolv.so.2"

[ -x "$zig" ] || die "$zig is not an executable"
case $out in /*) ;; *) die "OUT must be an absolute path" ;; esac
if [ -e "$out" ] && [ -n "$(ls -A "$out")" ]; then die "$out is not empty"; fi
rm -rf "$work"
mkdir -p "$work" "$out/usr/include" "$out/$libdir"

# --- zig generates the libraries ------------------------------------------------------------------------------

# A cache of its own, so exactly one copy of each generated file is found below.
export ZIG_GLOBAL_CACHE_DIR="$work/zig-global-cache" ZIG_LOCAL_CACHE_DIR="$work/zig-local-cache"
printf 'int main(void) { return 0; }\n' >"$work/main.c"
libs="-lm -lpthread -ldl -lrt -lutil -lresolv"
# Two links: a position-dependent executable makes crt1.o, a PIE Scrt1.o.
# shellcheck disable=SC2086 # $libs is a list of flags
"$zig" cc -target "$arch-linux-gnu.$glibc" -O2 "$work/main.c" -o "$work/main" $libs
# shellcheck disable=SC2086
"$zig" cc -target "$arch-linux-gnu.$glibc" -O2 -fPIE -pie "$work/main.c" -o "$work/main-pie" $libs

# The one file named $1 in zig's cache (two would mean another link's leftovers: refuse to guess).
generated() {
    found=$(find "$ZIG_GLOBAL_CACHE_DIR" -type f -name "$1")
    [ -n "$found" ] || die "zig generated no $1"
    [ "$(printf '%s\n' "$found" | wc -l)" -eq 1 ] || die "zig generated more than one $1: $found"
    printf '%s\n' "$found"
}

# Debug information and .comment name zig's cache and compiler: drop them, keep code and symbols.
clean_copy() {
    llvm-objcopy --strip-debug --remove-section=.comment "$1" "$2"
}

# --- libraries ------------------------------------------------------------------------------------------------

for soname in $stubs; do
    clean_copy "$(generated "$soname")" "$out/$libdir/$soname"
done
# zig names the loader's stub after its library name; its soname (and the name programs record) is the loader's.
clean_copy "$(generated libld.so.2)" "$out/$libdir/$loader"
for object in crt1.o Scrt1.o; do
    clean_copy "$(generated "$object")" "$out/$libdir/$object"
done

# libc_nonshared.a: zig's members are named by their cache paths. Rebuilt from the same members in the same
# order, stripped, with plain names and llvm-ar's deterministic mode (no times, owners or modes).
nonshared=$(generated libc_nonshared.a)
mkdir "$work/nonshared"
members=$(llvm-ar t "$nonshared")
for member in $members; do
    name=${member##*/}
    [ ! -e "$work/nonshared/$name" ] || die "libc_nonshared.a has two members named $name"
    llvm-ar p "$nonshared" "$member" >"$work/nonshared/$name.raw"
    clean_copy "$work/nonshared/$name.raw" "$work/nonshared/$name"
    rm "$work/nonshared/$name.raw"
done
(
    cd "$work/nonshared"
    # shellcheck disable=SC2046 # one word per member, in the archive's order
    llvm-ar rcsD "$out/$libdir/libc_nonshared.a" $(for member in $members; do echo "${member##*/}"; done)
)

# crti.o and crtn.o: glibc's bracket the _init/_fini sections; zig builds the start files without them, so
# nothing calls _init and they are empty. clang's driver links them by name, so they must exist.
printf '\t.section .note.GNU-stack,"",%%progbits\n' >"$work/empty.s"
for object in crti.o crtn.o; do
    clang --target="$multiarch" -c -x assembler "$work/empty.s" -o "$work/$object"
    clean_copy "$work/$object" "$out/$libdir/$object"
done

# Development links, and libc.so as glibc installs it: a linker script adding libc_nonshared.a and the loader
# (lld reads its absolute paths inside the sysroot, as it is in the sysroot itself).
for soname in $stubs; do
    [ "$soname" = libc.so.6 ] || ln -s "$soname" "$out/$libdir/${soname%.so.*}.so"
done
cat >"$out/$libdir/libc.so" <<EOF
/* GNU ld script
   Use the shared library, but some functions are only in
   the static library, so try that secondarily.  */
OUTPUT_FORMAT($format)
GROUP ( /$libdir/libc.so.6 /$libdir/libc_nonshared.a  AS_NEEDED ( /$libdir/$loader ) )
EOF

# libcrypt.so.1: zig has no ABI list for glibc's crypt library (CPython 3.11's _crypt links it), so its stub is built
# here, with crypt and crypt_r at glibc's first version on this architecture, which the libcrypt.so.1 of libxcrypt
# (what newer distributions ship) keeps too. Its crypt.h is written with the headers.
cat >"$work/crypt.c" <<'SOURCE'
char *crypt(const char *phrase, const char *setting) { return (char *)0 + (phrase == setting); }
char *crypt_r(const char *phrase, const char *setting, void *data) { return (char *)data + (phrase == setting); }
SOURCE
printf '%s { global: crypt; crypt_r; local: *; };\n' "$first_version" >"$work/crypt.map"
clang --target="$multiarch" -O2 -fPIC -shared -nostdlib -fuse-ld=lld -Wl,-soname,libcrypt.so.1 \
    -Wl,--version-script="$work/crypt.map" -o "$work/libcrypt.so.1" "$work/crypt.c"
clean_copy "$work/libcrypt.so.1" "$out/$libdir/libcrypt.so.1"
ln -s libcrypt.so.1 "$out/$libdir/libcrypt.so"

# --- headers --------------------------------------------------------------------------------------------------

# From the most general to the most specific, each overwriting the one before: zig's include order, reversed.
for dir in any-linux-any "$headers-linux-any" generic-glibc "$headers-linux-gnu"; do
    [ -d "$zig_lib/libc/include/$dir" ] || die "the wheel has no libc/include/$dir"
    cp -R "$zig_lib/libc/include/$dir/." "$out/usr/include/"
done
find "$out/usr/include" -type f -exec chmod 0644 {} +

# zig passes -D__GLIBC_MINOR__ on its command line; clang does not, so the floor is written into features.h
# right where the include guard starts (the header's own tests of __GLIBC_MINOR__ come before the place where
# glibc itself would define it).
features=$out/usr/include/features.h
minor=${glibc#2.}
sed -i "/^#define[[:space:]]*_FEATURES_H[[:space:]]*1\$/a #define __GLIBC_MINOR__ $minor" "$features"
[ "$(grep -c '^#define __GLIBC_MINOR__' "$features")" -eq 1 ] || die "features.h: cannot pin __GLIBC_MINOR__"
grep -A1 '^#define[[:space:]]*_FEATURES_H' "$features" | grep -qx "#define __GLIBC_MINOR__ $minor" ||
    die "features.h: __GLIBC_MINOR__ is not right after _FEATURES_H"

# crypt.h for the libcrypt stub. struct crypt_data has glibc's size, the larger of the two libraries' (libxcrypt's is
# 32 KiB), so a caller's buffer serves whichever libcrypt.so.1 the machine has.
cat >"$out/usr/include/crypt.h" <<'HEADER'
/* The crypt library's interface as glibc declares it, for the generated sysroot's libcrypt.so.1 stub. */
#ifndef _CRYPT_H
#define _CRYPT_H 1

#include <features.h>

__BEGIN_DECLS

extern char *crypt(const char *__phrase, const char *__setting) __THROW __nonnull((1, 2));

#ifdef __USE_GNU
struct crypt_data {
    char keysched[16 * 8];
    char sb0[32768];
    char sb1[32768];
    char sb2[32768];
    char sb3[32768];
    char crypt_3_buf[14];
    char current_salt[2];
    long int current_saltbits;
    int direction;
    int initialized;
};

extern char *crypt_r(const char *__phrase, const char *__setting, struct crypt_data *__restrict __data)
    __THROW __nonnull((1, 2, 3));
#endif

__END_DECLS

#endif
HEADER
chmod 0644 "$out/usr/include/crypt.h"

rm -rf "$work"
