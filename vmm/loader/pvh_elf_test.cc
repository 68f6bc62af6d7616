#include "vmm/loader/pvh_elf.h"

#include <elf.h>
#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <cstring>
#include <string>

#include "memory/test_memory.h"
#include "vmm/loader/pvh_boot.h"
#include "vmm/loader/test_elf.h"

namespace amalgam::vmm::loader {
namespace {

using memory::GuestAddress;
using memory::GuestMemory;

std::unique_ptr<GuestMemory> SmallRam(uint64_t bytes = 4 << 20) {
  return memory::testing::MakeMemory({{GuestAddress(0), bytes}});
}

std::string Message(const absl::Status& s) { return std::string(s.message()); }

bool Contains(const absl::Status& s, const std::string& needle) {
  return Message(s).find(needle) != std::string::npos;
}

TEST_CASE("pvh elf: a minimal image parses, loads and zeroes its bss") {
  TestElfOptions o;
  o.code = {0x90, 0x90, 0xf4};
  o.bss_bytes = 0x2000;
  o.entry = 0x100001;
  std::vector<uint8_t> elf = BuildTestElf(o);
  auto image = ParsePvhElf(elf);
  REQUIRE(image.ok());
  CHECK(image->entry == 0x100001);
  REQUIRE(image->segments.size() == 1);
  CHECK(image->segments[0].paddr == 0x100000);
  CHECK(image->segments[0].mem_size == 0x2003);
  CHECK(image->highest_paddr == 0x102003);

  auto mem = SmallRam();
  // Dirty the bss area first: loading must zero it.
  std::vector<uint8_t> junk(0x2001, 0xaa);
  REQUIRE(mem->Write(GuestAddress(0x100003), junk).ok());
  REQUIRE(LoadPvhSegments(*image, elf, *mem).ok());
  uint8_t got[4] = {};
  REQUIRE(mem->Read(GuestAddress(0x100000), absl::MakeSpan(got)).ok());
  CHECK(got[0] == 0x90);
  CHECK(got[2] == 0xf4);
  CHECK(got[3] == 0);
  auto last = mem->ReadObj<uint8_t>(GuestAddress(0x102002));
  REQUIRE(last.ok());
  CHECK(*last == 0);
  auto after = mem->ReadObj<uint8_t>(GuestAddress(0x102003));
  REQUIRE(after.ok());
  CHECK(*after == 0xaa);  // untouched past memsz
}

TEST_CASE("pvh elf: an 8-byte note value is accepted") {
  TestElfOptions o;
  o.note_desc_size = 8;
  auto image = ParsePvhElf(BuildTestElf(o));
  REQUIRE(image.ok());
  CHECK(image->entry == 0x100000);
}

TEST_CASE("pvh elf: garbage, truncation and wrong kinds give one clear line each") {
  std::vector<uint8_t> garbage = {'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l',
                                  'd', '!', 0,   0,   0,   0,   0,   0,   0,   0};
  auto s = ParsePvhElf(garbage).status();
  CHECK(Contains(s, "not an ELF file (bad magic); amalgam boots PVH ELF images"));
  CHECK(Contains(ParsePvhElf({}).status(), "not an ELF file"));

  std::vector<uint8_t> elf = BuildTestElf();
  for (size_t cut : {size_t{20}, size_t{63}, size_t{100}, size_t{190}, size_t{0x200}}) {
    std::vector<uint8_t> t(elf.begin(), elf.begin() + cut);
    absl::Status st = ParsePvhElf(t).status();
    INFO("cut at " << cut << ": " << Message(st));
    CHECK_FALSE(st.ok());
    CHECK(Contains(st, "truncated"));
  }

  TestElfOptions o32;
  o32.elf_class = 1;
  CHECK(Contains(ParsePvhElf(BuildTestElf(o32)).status(), "ELFCLASS32"));
  TestElfOptions arm;
  arm.machine = 183;  // EM_AARCH64
  CHECK(Contains(ParsePvhElf(BuildTestElf(arm)).status(), "not an x86-64 ELF"));
  TestElfOptions nonote;
  nonote.pvh_note = false;
  CHECK(Contains(ParsePvhElf(BuildTestElf(nonote)).status(),
                 "ELF has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY)"));
  TestElfOptions badentry;
  badentry.entry = 0x500000;
  CHECK(Contains(ParsePvhElf(BuildTestElf(badentry)).status(), "outside every loadable"));
}

TEST_CASE("pvh elf: hostile header fields are rejected, never trusted") {
  std::vector<uint8_t> elf = BuildTestElf();
  auto patch_phdr = [&](size_t field_off, uint64_t value) {
    std::vector<uint8_t> e = elf;
    std::memcpy(e.data() + sizeof(Elf64_Ehdr) + field_off, &value, sizeof(value));
    return e;
  };
  // p_offset huge, p_filesz so that offset + size wraps.
  CHECK(Contains(ParsePvhElf(patch_phdr(offsetof(Elf64_Phdr, p_offset), ~0ull - 4)).status(),
                 "truncated"));
  CHECK(Contains(ParsePvhElf(patch_phdr(offsetof(Elf64_Phdr, p_filesz), ~0ull)).status(),
                 "larger than its memory size"));
  CHECK(Contains(ParsePvhElf(patch_phdr(offsetof(Elf64_Phdr, p_paddr), ~0ull - 8)).status(),
                 "wraps"));
  // e_phnum large: program headers past the end.
  std::vector<uint8_t> e = elf;
  uint16_t phnum = 0xffff;
  std::memcpy(e.data() + offsetof(Elf64_Ehdr, e_phnum), &phnum, 2);
  CHECK(Contains(ParsePvhElf(e).status(), "truncated"));
  // A note whose name size points far past the segment.
  e = elf;
  uint32_t namesz = 0xfffffff0;
  std::memcpy(e.data() + sizeof(Elf64_Ehdr) + 2 * sizeof(Elf64_Phdr), &namesz, 4);
  CHECK(Contains(ParsePvhElf(e).status(), "truncated"));
}

TEST_CASE("pvh elf: segments outside RAM are refused before anything is copied") {
  TestElfOptions o;
  o.load_paddr = 0x300000;
  o.entry = 0x300000;
  o.bss_bytes = 0x200000;  // ends at 5 MiB + code, past 4 MiB of RAM
  std::vector<uint8_t> elf = BuildTestElf(o);
  auto image = ParsePvhElf(elf);
  REQUIRE(image.ok());
  auto mem = SmallRam();
  absl::Status s = LoadPvhSegments(*image, elf, *mem);
  CHECK(s.code() == absl::StatusCode::kOutOfRange);
  CHECK(Contains(s, "outside guest RAM (4 MiB)"));
}

TEST_CASE("pvh elf: the file loader names the file in every error") {
  auto mem = SmallRam();
  auto missing = LoadPvhKernelFile("/nonexistent/vmlinux", *mem);
  CHECK(Contains(missing.status(), "kernel /nonexistent/vmlinux: no such file"));
  std::string junk = WriteTestFile("junk.bin", {1, 2, 3});
  CHECK(Contains(LoadPvhKernelFile(junk, *mem).status(), "kernel " + junk + ": not an ELF"));
  std::string good = WriteTestFile("good.elf", BuildTestElf());
  auto ok = LoadPvhKernelFile(good, *mem);
  REQUIRE(ok.ok());
  CHECK(ok->entry == 0x100000);
  CHECK(Contains(LoadPvhKernelFile("/", *mem).status(), "not a regular file"));
  std::string empty = WriteTestFile("empty.elf", {});
  CHECK(Contains(LoadPvhKernelFile(empty, *mem).status(), "kernel " + empty + ": not an ELF"));
}

}  // namespace
}  // namespace amalgam::vmm::loader
