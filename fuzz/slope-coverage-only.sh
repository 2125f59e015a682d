#!/bin/sh
# A RUSTC_WRAPPER for `cargo fuzz build`: keeps libFuzzer's coverage
# instrumentation (sancov) in slope and the fuzz targets only, and compiles
# every dependency without it. Most of compile_models' time is Cranelift
# compiling the generated kernels; instrumented, every comparison inside
# Cranelift calls a libFuzzer hook, which more than halves the executions
# per second while the coverage that guides the fuzzer is slope's own.
#
#   RUSTC_WRAPPER=$PWD/slope-coverage-only.sh RUSTC_BOOTSTRAP=1 \
#     cargo fuzz build -O -s none --target-dir target-slope-cov compile_models
rustc="$1"
shift
case " $* " in
*" --crate-name slope "* | *" --crate-name slope_fuzz "* | *" --crate-name compile_models "* | *" --crate-name parse_check "*)
    exec "$rustc" "$@"
    ;;
esac
for arg in "$@"; do
    shift
    case "$arg" in
    -Cpasses=sancov-module | -Cllvm-args=-sanitizer-coverage-*) ;;
    *) set -- "$@" "$arg" ;;
    esac
done
exec "$rustc" "$@"
