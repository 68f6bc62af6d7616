"""Code generation with Debian's own compilers, no downloads.

capnp + capnpc-c++ (package capnproto); protoc + grpc_cpp_plugin (protobuf-compiler,
protobuf-compiler-grpc). Imports resolve from the workspace root, so write them
workspace-relative: capnp `import "/fabric/schema/x.capnp"`, proto `import "vmm/api/x.proto"`.
The tools are called by absolute path and are not tracked by Bazel: after an apt upgrade of them
run `bazel sync --configure && bazel clean`.
"""

def _locs(labels):
    return " ".join(["$(locations %s)" % s for s in labels])

def cc_capnp_library(name, srcs, deps = [], visibility = None):
    """Compiles .capnp schemas; include them as "<package>/<file>.capnp.h"."""
    hdrs = [s + ".h" for s in srcs]
    cpps = [s + ".c++" for s in srcs]
    native.genrule(
        name = name + "_capnp_gen",
        srcs = srcs + [d + "_capnp_srcs" for d in deps],
        outs = hdrs + cpps,
        # capnpc-c++ writes absolute imports as #include <a/b.capnp.h>; generated headers are only
        # on the -iquote path, so rewrite those to the quoted form.
        cmd = ("/usr/bin/capnp compile -I. -o/usr/bin/capnpc-c++:$(GENDIR) " + _locs(srcs) +
               " && sed -i 's|^#include <\\(.*\\.capnp\\.h\\)>$$|#include \"\\1\"|' $(OUTS)"),
    )
    native.filegroup(
        name = name + "_capnp_srcs",
        srcs = srcs + [d + "_capnp_srcs" for d in deps],
        visibility = visibility,
    )
    native.cc_library(
        name = name,
        srcs = cpps,
        hdrs = hdrs,
        deps = deps + ["@capnp"],
        visibility = visibility,
    )

def cc_grpc_library(name, srcs, deps = [], grpc = True, visibility = None):
    """Compiles .proto files (and, with grpc = True, their services).

    Include as "<package>/<file>.pb.h" and "<package>/<file>.grpc.pb.h".
    """
    bases = [s[:-len(".proto")] for s in srcs]
    hdrs = [b + ".pb.h" for b in bases]
    cpps = [b + ".pb.cc" for b in bases]
    cmd = "/usr/bin/protoc -I. --cpp_out=$(GENDIR)"
    if grpc:
        hdrs += [b + ".grpc.pb.h" for b in bases]
        cpps += [b + ".grpc.pb.cc" for b in bases]
        cmd += " --grpc_out=$(GENDIR) --plugin=protoc-gen-grpc=/usr/bin/grpc_cpp_plugin"
    native.genrule(
        name = name + "_proto_gen",
        srcs = srcs + [d + "_proto_srcs" for d in deps],
        outs = hdrs + cpps,
        cmd = cmd + " " + _locs(srcs),
    )
    native.filegroup(
        name = name + "_proto_srcs",
        srcs = srcs + [d + "_proto_srcs" for d in deps],
        visibility = visibility,
    )
    native.cc_library(
        name = name,
        srcs = cpps,
        hdrs = hdrs,
        deps = deps + (["@grpcpp", "@protobuf"] if grpc else ["@protobuf"]),
        visibility = visibility,
    )
