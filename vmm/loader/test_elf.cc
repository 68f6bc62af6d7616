#include "vmm/loader/test_elf.h"

#include <elf.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace amalgam::vmm::loader {

std::vector<uint8_t> BuildTestElf(const TestElfOptions& o) {
  const uint64_t note_off = sizeof(Elf64_Ehdr) + 2 * sizeof(Elf64_Phdr);
  std::vector<uint8_t> out(kTestElfCodeOffset + o.code.size(), 0);

  Elf64_Ehdr eh = {};
  std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
  eh.e_ident[EI_CLASS] = o.elf_class;
  eh.e_ident[EI_DATA] = ELFDATA2LSB;
  eh.e_ident[EI_VERSION] = EV_CURRENT;
  eh.e_type = ET_EXEC;
  eh.e_machine = o.machine;
  eh.e_version = EV_CURRENT;
  eh.e_entry = o.entry;
  eh.e_phoff = sizeof(Elf64_Ehdr);
  eh.e_ehsize = sizeof(Elf64_Ehdr);
  eh.e_phentsize = sizeof(Elf64_Phdr);
  eh.e_phnum = 2;
  std::memcpy(out.data(), &eh, sizeof(eh));

  Elf64_Phdr load = {};
  load.p_type = PT_LOAD;
  load.p_flags = PF_R | PF_W | PF_X;
  load.p_offset = kTestElfCodeOffset;
  load.p_vaddr = o.load_paddr;
  load.p_paddr = o.load_paddr;
  load.p_filesz = o.code.size();
  load.p_memsz = o.code.size() + o.bss_bytes;
  load.p_align = 0x1000;
  std::memcpy(out.data() + sizeof(Elf64_Ehdr), &load, sizeof(load));

  Elf64_Phdr note = {};
  note.p_type = o.pvh_note ? PT_NOTE : PT_NULL;
  note.p_offset = note_off;
  note.p_filesz = sizeof(Elf64_Nhdr) + 4 + o.note_desc_size;
  note.p_align = 4;
  std::memcpy(out.data() + sizeof(Elf64_Ehdr) + sizeof(Elf64_Phdr), &note, sizeof(note));

  Elf64_Nhdr nh = {};
  nh.n_namesz = 4;
  nh.n_descsz = o.note_desc_size;
  nh.n_type = 18;  // XEN_ELFNOTE_PHYS32_ENTRY
  std::memcpy(out.data() + note_off, &nh, sizeof(nh));
  std::memcpy(out.data() + note_off + sizeof(nh), "Xen", 4);
  uint64_t entry64 = o.entry;
  std::memcpy(out.data() + note_off + sizeof(nh) + 4, &entry64, o.note_desc_size >= 8 ? 8 : 4);

  std::memcpy(out.data() + kTestElfCodeOffset, o.code.data(), o.code.size());
  return out;
}

std::vector<uint8_t> SerialThenExitCode(const char* text, uint8_t exit_value) {
  std::vector<uint8_t> code = {0x66, 0xba, 0xf8, 0x03};  // mov dx, 0x3f8
  for (const char* p = text; *p != 0; ++p) {
    code.insert(code.end(), {0xb0, static_cast<uint8_t>(*p), 0xee});  // mov al, c; out dx, al
  }
  code.insert(code.end(), {0xb0, exit_value, 0xe6, 0xf4});  // mov al, v; out 0xf4, al
  code.insert(code.end(), {0xf4, 0xeb, 0xfd});              // 1: hlt; jmp 1b
  return code;
}

std::string WriteTestFile(const std::string& name, const std::vector<uint8_t>& bytes) {
  const char* dir = std::getenv("TEST_TMPDIR");
  std::string path = std::string(dir ? dir : "/tmp") + "/" + name;
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return "";
  bool ok = ::write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size());
  ::close(fd);
  return ok ? path : "";
}

std::string WriteTestKernel(const std::string& name, const std::vector<uint8_t>& code) {
  TestElfOptions o;
  o.code = code;
  return WriteTestFile(name, BuildTestElf(o));
}

}  // namespace amalgam::vmm::loader
