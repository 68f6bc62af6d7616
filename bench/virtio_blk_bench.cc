// virtio-blk streaming throughput, amalgam vs QEMU microvm, same run, same guest file, same disk
// file: the test guest's `blkread mib=N` reads N MiB through 64 KiB requests (one in flight).
// Each VMM's time for that boot minus its time for a `hello` boot with the same devices is the
// streaming time; MiB/s and the amalgam/QEMU ratio are printed (medians of alternating runs).
// Both are real processes: `amalgam --disk FILE,ro` and `qemu-system-x86_64 -M microvm` with a
// read-only virtio-blk-device on the same file. Never asserts.
//   bazel run -c opt //bench:virtio_blk_bench -- [--mib N] [--runs R] [--guest PATH]
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// Runs `cmd` (stdout and stderr to `log`) and returns its seconds, or a negative value when
// `log` does not contain `want`.
double TimeRun(const char* who, const std::string& cmd, const std::string& cmdline,
               const std::string& want, const std::string& log) {
  const auto t0 = Clock::now();
  (void)system((cmd + " > " + log + " 2>&1 < /dev/null").c_str());
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  std::ifstream f(log);
  std::string out((std::istreambuf_iterator<char>(f)), {});
  if (out.find(want) == std::string::npos) {
    fprintf(stderr, "%s [%s] failed:\n%s\n", who, cmdline.c_str(), out.c_str());
    return -1;
  }
  return s;
}

// Seconds for one boot of the `amalgam` binary, or a negative value when the guest did not
// report `want`. Same disk (read-only), same RAM as the QEMU run.
double RunAmalgam(const std::string& amalgam, const std::string& guest, const std::string& disk,
                  const std::string& cmdline, const std::string& want, const std::string& log) {
  return TimeRun("amalgam",
                 amalgam + " --kernel " + guest + " --memory 256M --disk " + disk +
                     ",ro --cmdline '" + cmdline + "'",
                 cmdline, want, log);
}

double RunQemu(const std::string& qemu, const std::string& guest, const std::string& disk,
               const std::string& cmdline, const std::string& want, const std::string& log) {
  return TimeRun(
      "qemu",
      qemu + " -M microvm,acpi=off -enable-kvm -cpu host,-arch-capabilities -m 256" +
          " -nodefaults -no-user-config -nographic -no-reboot -serial stdio" +
          " -device isa-debug-exit,iobase=0xf4,iosize=0x04 -global virtio-mmio.force-legacy=false" +
          " -drive id=d0,file=" + disk + ",format=raw,if=none,readonly=on,cache=writeback" +
          " -device virtio-blk-device,drive=d0 -kernel " + guest + " -append '" + cmdline + "'",
      cmdline, want, log);
}

}  // namespace

int main(int argc, char** argv) {
  int mib = 256, runs = 3;
  std::string guest = "guest/test_guest.elf", qemu = "qemu-system-x86_64";
  std::string amalgam = "vmm/amalgam";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--mib")
      mib = atoi(argv[i + 1]);
    else if (a == "--runs")
      runs = atoi(argv[i + 1]);
    else if (a == "--guest")
      guest = argv[i + 1];
    else if (a == "--qemu")
      qemu = argv[i + 1];
    else if (a == "--amalgam")
      amalgam = argv[i + 1];
    else {
      fprintf(stderr,
              "usage: virtio_blk_bench [--mib N] [--runs R] [--guest PATH] [--qemu BIN] "
              "[--amalgam BIN]\n");
      return 2;
    }
  }
  if (access(amalgam.c_str(), X_OK) != 0) {
    fprintf(stderr, "virtio_blk_bench: amalgam binary %s not found (--amalgam PATH)\n",
            amalgam.c_str());
    return 2;
  }
  if (access(guest.c_str(), R_OK) != 0) {
    // `bazel run` starts in the runfiles tree; elsewhere, look next to the workspace outputs.
    fprintf(stderr, "virtio_blk_bench: guest %s not found (--guest PATH)\n", guest.c_str());
    return 2;
  }
  char dir_template[] = "/tmp/virtio_blk_bench.XXXXXX";
  const std::string dir = mkdtemp(dir_template);
  const std::string disk = dir + "/disk.img", log = dir + "/qemu.log";
  {
    // Real data (not a sparse hole) and warm in the page cache for both VMMs.
    std::vector<uint8_t> chunk(1 << 20);
    for (size_t i = 0; i < chunk.size(); ++i) chunk[i] = static_cast<uint8_t>(i * 131 + 7);
    FILE* f = fopen(disk.c_str(), "wb");
    for (int i = 0; i < mib; ++i) fwrite(chunk.data(), 1, chunk.size(), f);
    fclose(f);
  }
  const std::string read_cmd = "blkread mib=" + std::to_string(mib);
  const std::string read_want = "blkread: ok mib=" + std::to_string(mib);
  const std::string idle_want = "hello: Hello";
  std::vector<double> am, am_idle, qe, qe_idle;
  for (int r = 0; r < runs; ++r) {
    am_idle.push_back(RunAmalgam(amalgam, guest, disk, "hello", idle_want, log));
    am.push_back(RunAmalgam(amalgam, guest, disk, read_cmd, read_want, log));
    qe_idle.push_back(RunQemu(qemu, guest, disk, "hello", idle_want, log));
    qe.push_back(RunQemu(qemu, guest, disk, read_cmd, read_want, log));
  }
  auto bad = [](const std::vector<double>& v) {
    return std::any_of(v.begin(), v.end(), [](double x) { return x < 0; });
  };
  const double am_s = Median(am) - Median(am_idle), qe_s = Median(qe) - Median(qe_idle);
  printf("virtio-blk sequential read, %d MiB in 64 KiB requests (1 in flight), %d runs, medians\n",
         mib, runs);
  printf("%-8s %10s %10s %12s\n", "vmm", "boot+read", "boot", "MiB/s");
  if (!bad(am) && !bad(am_idle)) {
    printf("%-8s %9.3fs %9.3fs %12.1f\n", "amalgam", Median(am), Median(am_idle),
           am_s > 0 ? mib / am_s : 0.0);
  } else {
    printf("amalgam  failed (see stderr)\n");
  }
  if (!bad(qe) && !bad(qe_idle)) {
    printf("%-8s %9.3fs %9.3fs %12.1f\n", "qemu", Median(qe), Median(qe_idle),
           qe_s > 0 ? mib / qe_s : 0.0);
  } else {
    printf("qemu     failed (see stderr)\n");
  }
  if (!bad(am) && !bad(qe) && am_s > 0 && qe_s > 0) {
    printf("ratio amalgam/qemu throughput: %.2f\n", qe_s / am_s);
  } else {
    printf(
        "ratio amalgam/qemu throughput: n/a (a run failed, or the read hid in boot noise: "
        "raise --mib)\n");
  }
  unlink(disk.c_str());
  unlink(log.c_str());
  rmdir(dir.c_str());
  return 0;
}
