"""cc_fuzz_target: a libFuzzer binary plus a bounded run of it as a test.

`name` is the fuzzer (bazel run //pkg:name -- -max_total_time=600 to fuzz for real);
`name + "_test"` runs it for `runs` inputs or `seconds`, whichever ends first, starting from the
`corpus` files, so every CI run fuzzes each parser for a bounded time. Needs clang (.bazelrc).
"""

def cc_fuzz_target(name, srcs, deps = [], corpus = [], runs = 200000, seconds = 20, copts = [], **kwargs):
    native.cc_binary(
        name = name,
        srcs = srcs,
        deps = deps,
        copts = copts + ["-fsanitize=fuzzer"],
        linkopts = ["-fsanitize=fuzzer"],
        testonly = True,
        **kwargs
    )
    native.sh_test(
        name = name + "_test",
        size = "small",
        srcs = ["//bzl:run_fuzzer.sh"],
        args = ["$(location :%s)" % name, str(runs), str(seconds)] +
               ["$(location %s)" % c for c in corpus],
        data = [":" + name] + corpus,
    )
