/* Shared definitions of the amalgam test guest (ring 0 and ring 3). Freestanding C, no libc. */
#ifndef AMALGAM_GUEST_GUEST_H_
#define AMALGAM_GUEST_GUEST_H_

#ifndef __ASSEMBLER__
typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;

#endif

#define MAX_CPUS 64
#define CMDLINE_MAX 512
#define MEMMAP_MAX 32
#define KSTACK_SIZE 4096
#define USTACK_SIZE 16384

/* Layout of the GDT in boot.S; the selectors are part of the iretq to ring 3. */
#define SEL_KCODE32 0x08
#define SEL_KCODE64 0x10
#define SEL_KDATA 0x18
#define SEL_UDATA 0x20
#define SEL_UCODE64 0x28
#define SEL_TSS0 0x30 /* 16 bytes per CPU */

#define PVH_MAGIC 0x336ec578u
#define AP_TRAMPOLINE_PADDR 0x8000u
#define LAPIC_BASE 0xFEE00000ull
#define PORT_SERIAL 0x3F8
#define PORT_DEBUG_EXIT 0xF4

#ifndef __ASSEMBLER__
/* What ring 0 learned from the PVH start info, copied out so the VMM's buffers may be anywhere. */
struct memmap_entry {
  u64 addr;
  u64 size;
  u32 type; /* 1 = RAM */
  u32 reserved;
};

struct boot_info {
  u32 start_info_version;
  u32 memmap_entries;        /* 0 when the start info has no memmap (version 0) */
  u32 cpus_requested;        /* from cmdline cpus=N, clamped to 1..MAX_CPUS */
  u32 cpus_invalid;          /* cpus= was present but not a number in range */
  char cmdline[CMDLINE_MAX]; /* NUL-terminated, possibly truncated */
  struct memmap_entry memmap[MEMMAP_MAX];
};

extern struct boot_info g_boot;
extern char __image_end[]; /* linker script: first byte past the loaded image (incl. stacks) */

/* Serial + exit helpers: placed in the ring-0 section (checked by ring0_insn_check), callable
 * from ring 3 as well because ring 3 runs with IOPL=3. */
void serial_lock(void);
void serial_unlock(void);
void serial_write(const char *s);
void serial_write_hex(u64 v, int digits);
void serial_write_dec(u64 v);
void guest_exit(u32 value) __attribute__((noreturn)); /* prints the exit line, writes 0xF4 */

/* The RAM free for workloads (user.c): above the image, in the memmap entry holding it. */
int free_ram(u64 *base, u64 *size);

/* Ring-3 entry (user.c): index 0 is the BSP. Never returns. */
void user_main(u32 cpu) __attribute__((noreturn));

static inline void outb(u16 port, u8 v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline u8 inb(u16 port) {
  u8 v;
  __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}

#endif /* __ASSEMBLER__ */

#endif
