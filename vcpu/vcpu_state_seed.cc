// Writes a small valid serialized VcpuState (the fuzzer's seed corpus) to argv[1].
#include <cstdio>

#include "vcpu/vcpu_state.h"

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  amalgam::vcpu::VcpuState st;
  st.cpuid.resize(2);
  st.cpuid[0].function = 1;
  st.regs.rip = 0x1000;
  st.has_sregs2 = true;
  st.xsave.assign(4096, 0);
  st.has_xcrs = true;
  st.has_lapic = true;
  st.msrs.resize(3);
  std::vector<uint8_t> bytes = amalgam::vcpu::SerializeVcpuState(st);
  FILE* f = std::fopen(argv[1], "wb");
  if (f == nullptr) return 1;
  // The fuzzer's mode byte: even = parse the rest as is (a valid state); mutations reach both.
  std::fputc(0, f);
  std::fwrite(bytes.data(), 1, bytes.size(), f);
  return std::fclose(f) == 0 ? 0 : 1;
}
