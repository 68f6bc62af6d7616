#include "vmm/loader/pvh_elf.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace amalgam::vmm::loader {
namespace {

absl::Status Invalid(const std::string& msg) { return absl::InvalidArgumentError(msg); }

// True when [offset, offset + len) lies inside a buffer of `size` bytes, without overflow.
bool InBounds(uint64_t offset, uint64_t len, uint64_t size) {
  return offset <= size && len <= size - offset;
}

template <typename T>
T Load(absl::Span<const uint8_t> bytes, uint64_t offset) {
  T value;
  std::memcpy(&value, bytes.data() + offset, sizeof(T));
  return value;
}

uint64_t AlignUp(uint64_t v, uint64_t align) { return (v + align - 1) & ~(align - 1); }

// Scans one PT_NOTE segment for the PVH entry note. Returns true and sets *entry when found.
absl::StatusOr<bool> FindPvhNote(absl::Span<const uint8_t> bytes, const Elf64_Phdr& ph,
                                 uint32_t* entry) {
  if (!InBounds(ph.p_offset, ph.p_filesz, bytes.size())) {
    return Invalid(absl::StrFormat(
        "truncated: PT_NOTE at file offset %#x size %#x extends past the end of the %u-byte file",
        ph.p_offset, ph.p_filesz, bytes.size()));
  }
  // Notes are 4-byte aligned in practice; the gABI allows 8 (e.g. .note.gnu.property). The
  // descriptor and the next note start at multiples of the alignment from the note's start.
  const uint64_t align = ph.p_align == 8 ? 8 : 4;
  uint64_t pos = ph.p_offset;
  const uint64_t end = ph.p_offset + ph.p_filesz;
  while (end - pos >= sizeof(Elf64_Nhdr)) {
    Elf64_Nhdr nh = Load<Elf64_Nhdr>(bytes, pos);
    uint64_t name_off = pos + sizeof(Elf64_Nhdr);
    if (!InBounds(name_off, nh.n_namesz, end)) {
      return Invalid("truncated: an ELF note's name runs past its PT_NOTE segment");
    }
    uint64_t desc_off = pos + AlignUp(sizeof(Elf64_Nhdr) + nh.n_namesz, align);
    if (!InBounds(desc_off, nh.n_descsz, end)) {
      return Invalid("truncated: an ELF note's descriptor runs past its PT_NOTE segment");
    }
    const bool is_xen = nh.n_namesz == 4 && std::memcmp(bytes.data() + name_off, "Xen", 4) == 0;
    if (is_xen && nh.n_type == kXenElfNotePhys32Entry) {
      if (nh.n_descsz == 4) {
        *entry = Load<uint32_t>(bytes, desc_off);
      } else if (nh.n_descsz == 8) {
        uint64_t e = Load<uint64_t>(bytes, desc_off);
        if (e > UINT32_MAX) {
          return Invalid(absl::StrFormat(
              "PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY) holds %#x, above 4 GiB", e));
        }
        *entry = static_cast<uint32_t>(e);
      } else {
        return Invalid(absl::StrFormat(
            "PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY) has a %u-byte value; expected 4 or 8",
            nh.n_descsz));
      }
      return true;
    }
    const uint64_t next = AlignUp(desc_off + nh.n_descsz - pos, align);
    if (next > end - pos) break;  // the last note's padding may be cut off
    pos += next;
  }
  return false;
}

}  // namespace

absl::StatusOr<PvhImage> ParsePvhElf(absl::Span<const uint8_t> bytes) {
  if (bytes.size() < EI_NIDENT || std::memcmp(bytes.data(), ELFMAG, SELFMAG) != 0) {
    return Invalid(
        "not an ELF file (bad magic); amalgam boots PVH ELF images such as a vmlinux or the "
        "test guest");
  }
  if (bytes[EI_CLASS] == ELFCLASS32) {
    return Invalid(
        "32-bit ELF (ELFCLASS32) is not supported; amalgam boots 64-bit x86-64 PVH ELF images");
  }
  if (bytes[EI_CLASS] != ELFCLASS64) {
    return Invalid(absl::StrFormat("unknown ELF class %u; expected ELFCLASS64", bytes[EI_CLASS]));
  }
  if (bytes[EI_DATA] != ELFDATA2LSB) {
    return Invalid("big-endian ELF; expected a little-endian x86-64 image");
  }
  if (bytes.size() < sizeof(Elf64_Ehdr)) {
    return Invalid(
        absl::StrFormat("truncated: %u bytes, shorter than the 64-byte ELF header", bytes.size()));
  }
  const Elf64_Ehdr eh = Load<Elf64_Ehdr>(bytes, 0);
  if (eh.e_machine != EM_X86_64) {
    return Invalid(
        absl::StrFormat("not an x86-64 ELF (e_machine %u); expected EM_X86_64 (62)", eh.e_machine));
  }
  if (eh.e_type != ET_EXEC && eh.e_type != ET_DYN) {
    return Invalid(absl::StrFormat(
        "ELF type %u is not an executable (ET_EXEC); object files cannot boot", eh.e_type));
  }
  if (eh.e_phnum == 0) return Invalid("ELF has no program headers; nothing to load");
  if (eh.e_phentsize < sizeof(Elf64_Phdr)) {
    return Invalid(absl::StrFormat("ELF program header size %u is smaller than %u", eh.e_phentsize,
                                   sizeof(Elf64_Phdr)));
  }
  const uint64_t ph_bytes = static_cast<uint64_t>(eh.e_phnum) * eh.e_phentsize;
  if (!InBounds(eh.e_phoff, ph_bytes, bytes.size())) {
    return Invalid(absl::StrFormat(
        "truncated: %u program headers at offset %#x extend past the end of the %u-byte file",
        eh.e_phnum, eh.e_phoff, bytes.size()));
  }

  PvhImage image;
  bool have_entry = false;
  image.lowest_paddr = UINT64_MAX;
  for (uint64_t i = 0; i < eh.e_phnum; ++i) {
    const Elf64_Phdr ph = Load<Elf64_Phdr>(bytes, eh.e_phoff + i * eh.e_phentsize);
    if (ph.p_type == PT_NOTE && !have_entry) {
      absl::StatusOr<bool> found = FindPvhNote(bytes, ph, &image.entry);
      if (!found.ok()) return found.status();
      have_entry = *found;
    }
    if (ph.p_type != PT_LOAD || ph.p_memsz == 0) continue;
    if (ph.p_filesz > ph.p_memsz) {
      return Invalid(absl::StrFormat("segment %u: file size %#x is larger than its memory size %#x",
                                     i, ph.p_filesz, ph.p_memsz));
    }
    if (!InBounds(ph.p_offset, ph.p_filesz, bytes.size())) {
      return Invalid(absl::StrFormat(
          "truncated: segment %u at file offset %#x size %#x extends past the end of the "
          "%u-byte file",
          i, ph.p_offset, ph.p_filesz, bytes.size()));
    }
    if (ph.p_paddr > UINT64_MAX - ph.p_memsz) {
      return Invalid(absl::StrFormat("segment %u: address %#x + size %#x wraps around", i,
                                     ph.p_paddr, ph.p_memsz));
    }
    image.segments.push_back({ph.p_paddr, ph.p_offset, ph.p_filesz, ph.p_memsz});
    image.lowest_paddr = std::min<uint64_t>(image.lowest_paddr, ph.p_paddr);
    image.highest_paddr = std::max<uint64_t>(image.highest_paddr, ph.p_paddr + ph.p_memsz);
  }
  if (!have_entry) {
    return Invalid(
        "ELF has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY); amalgam enters kernels through "
        "PVH: use a vmlinux built with CONFIG_PVH=y or the test guest (bzImage is not supported)");
  }
  if (image.segments.empty()) return Invalid("ELF has no loadable (PT_LOAD) segments");
  bool entry_loaded = false;
  for (const ElfSegment& s : image.segments) {
    if (image.entry >= s.paddr && image.entry - s.paddr < s.mem_size) entry_loaded = true;
  }
  if (!entry_loaded) {
    return Invalid(
        absl::StrFormat("PVH entry %#x lies outside every loadable segment", image.entry));
  }
  return image;
}

absl::Status LoadPvhSegments(const PvhImage& image, absl::Span<const uint8_t> bytes,
                             memory::GuestMemory& memory) {
  for (size_t i = 0; i < image.segments.size(); ++i) {
    const ElfSegment& s = image.segments[i];
    const memory::GuestAddress at(s.paddr);
    if (!memory.IsValidRange(at, s.mem_size)) {
      return absl::OutOfRangeError(absl::StrFormat(
          "segment %u [%#x, %#x) lies outside guest RAM (%u MiB); give the VM more --memory or "
          "check the image's load addresses",
          i, s.paddr, s.paddr + s.mem_size, memory.total_size() >> 20));
    }
    if (!InBounds(s.file_offset, s.file_size, bytes.size())) {
      return absl::InvalidArgumentError(absl::StrFormat("segment %u: file range out of bounds", i));
    }
    absl::StatusOr<uint8_t*> host = memory.GetHostAddress(at, s.mem_size);
    if (!host.ok()) return host.status();
    std::memcpy(*host, bytes.data() + s.file_offset, s.file_size);
    std::memset(*host + s.file_size, 0, s.mem_size - s.file_size);
  }
  return absl::OkStatus();
}

absl::StatusOr<PvhImage> LoadPvhKernelFile(const std::string& path, memory::GuestMemory& memory) {
  const std::string prefix = absl::StrCat("kernel ", path, ": ");
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    std::string why = err == ENOENT ? "no such file; pass the path of a PVH ELF image to --kernel"
                                    : absl::StrCat("cannot open: ", strerror(err));
    return absl::NotFoundError(prefix + why);
  }
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(prefix + "not a regular file");
  }
  // Map rather than read: an unstripped vmlinux can be hundreds of MiB, and only the loadable
  // segments are ever touched.
  const size_t size = static_cast<size_t>(st.st_size);
  void* map = nullptr;
  if (size > 0) {
    map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
      int err = errno;
      ::close(fd);
      return absl::InvalidArgumentError(prefix + "cannot map: " + strerror(err));
    }
  }
  ::close(fd);
  absl::Cleanup unmap = [map, size] {
    if (map != nullptr) ::munmap(map, size);
  };
  absl::Span<const uint8_t> bytes(static_cast<const uint8_t*>(map), size);
  absl::StatusOr<PvhImage> image = ParsePvhElf(bytes);
  if (!image.ok()) {
    return absl::Status(image.status().code(), prefix + std::string(image.status().message()));
  }
  absl::Status loaded = LoadPvhSegments(*image, bytes, memory);
  if (!loaded.ok()) return absl::Status(loaded.code(), prefix + std::string(loaded.message()));
  return image;
}

}  // namespace amalgam::vmm::loader
