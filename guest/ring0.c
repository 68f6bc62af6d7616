/* Ring-0 C part of the test guest: per-CPU TSS and IDT, the PVH start info copy, AP start-up.
 * Runs under PVM's instruction emulator (~1 us/instruction), so it does as little as possible and
 * everything else happens in ring 3 (user.c). Built with -mgeneral-regs-only: no SSE, ever. */
#include "guest.h"

/* Everything executable here may run in ring 0: keep it in the checked section. */
#pragma clang section text = ".ring0.text"

struct hvm_start_info {
  u32 magic;
  u32 version;
  u32 flags;
  u32 nr_modules;
  u64 modlist_paddr;
  u64 cmdline_paddr;
  u64 rsdp_paddr;
  u64 memmap_paddr;
  u32 memmap_entries;
  u32 reserved;
};

struct tss {
  u32 reserved0;
  u64 rsp0;
  u64 rsp1;
  u64 rsp2;
  u64 reserved1;
  u64 ist[7];
  u64 reserved2;
  u16 reserved3;
  u16 iomap_base;
} __attribute__((packed));

struct idt_entry {
  u16 offset_lo;
  u16 selector;
  u8 ist;
  u8 type_attr;
  u16 offset_mid;
  u32 offset_hi;
  u32 zero;
} __attribute__((packed));

/* Vectors 0..31 (exceptions) only: a stray interrupt shows up as a reported #GP naming the
 * vector in its error code. */
#define IDT_ENTRIES 32

struct boot_info g_boot;
static struct tss g_tss[MAX_CPUS];
static struct idt_entry g_idt[IDT_ENTRIES] __attribute__((aligned(16)));

extern u32 pvh_start_info_paddr;
extern u64 gdt[];
extern const u64 isr_stubs[32];
extern void stop_vm(void) __attribute__((noreturn));
extern char kstacks[], ustacks[];
extern char ap_trampoline_start[], ap_trampoline_end[];

struct fault_frame {
  u64 r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx, rbx, rax;
  u64 vector, error, rip, cs, rflags, rsp, ss;
};

static void idt_set(u32 vector, u64 handler, u32 dpl) {
  struct idt_entry *e = &g_idt[vector];
  e->offset_lo = (u16)handler;
  e->selector = SEL_KCODE64;
  e->ist = 0;
  e->type_attr = (u8)(0x8E | (dpl << 5)); /* present, 64-bit interrupt gate */
  e->offset_mid = (u16)(handler >> 16);
  e->offset_hi = (u32)(handler >> 32);
  e->zero = 0;
}

static void load_idt(void) {
  struct __attribute__((packed)) {
    u16 limit;
    u64 base;
  } idtr = {sizeof(g_idt) - 1, (u64)g_idt};
  __asm__ volatile("lidt %0" : : "m"(idtr));
}

static void load_tss(u32 cpu) {
  struct tss *t = &g_tss[cpu];
  u64 base = (u64)t;
  u64 limit = sizeof(*t) - 1;
  t->rsp0 = (u64)kstacks + (u64)(cpu + 1) * KSTACK_SIZE;
  t->iomap_base = sizeof(*t); /* no I/O bitmap: ring 3 has IOPL=3 */
  gdt[SEL_TSS0 / 8 + 2 * cpu] = (limit & 0xFFFF) | ((base & 0xFFFFFF) << 16) | (0x89ull << 40) |
                                (((limit >> 16) & 0xF) << 48) | (((base >> 24) & 0xFF) << 56);
  gdt[SEL_TSS0 / 8 + 2 * cpu + 1] = base >> 32;
  __asm__ volatile("ltr %w0" : : "r"(SEL_TSS0 + 16 * cpu));
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* Only cpus=N is parsed in ring 0 (it decides how many APs to start); ring 3 parses the rest. */
static void parse_cpus(void) {
  const char *s = g_boot.cmdline;
  g_boot.cpus_requested = 1;
  for (u32 i = 0; s[i] != 0; i++) {
    if ((i == 0 || is_space(s[i - 1])) && s[i] == 'c' && s[i + 1] == 'p' && s[i + 2] == 'u' &&
        s[i + 3] == 's' && s[i + 4] == '=') {
      u64 n = 0;
      u32 j = i + 5, digits = 0;
      for (; s[j] >= '0' && s[j] <= '9' && digits < 6; j++, digits++)
        n = n * 10 + (u64)(s[j] - '0');
      if (digits == 0 || (s[j] != 0 && !is_space(s[j])) || n < 1 || n > MAX_CPUS) {
        g_boot.cpus_invalid = 1;
      } else {
        g_boot.cpus_requested = (u32)n;
      }
    }
  }
}

static void copy_start_info(const struct hvm_start_info *si) {
  g_boot.start_info_version = si->version;
  if (si->cmdline_paddr != 0 && si->cmdline_paddr < (4ull << 30) - CMDLINE_MAX) {
    const volatile char *src = (const volatile char *)si->cmdline_paddr;
    u32 i = 0;
    for (; i < CMDLINE_MAX - 1 && src[i] != 0; i++) g_boot.cmdline[i] = src[i];
    g_boot.cmdline[i] = 0;
  }
  if (si->version >= 1 && si->memmap_paddr != 0 && si->memmap_paddr < (4ull << 30) - 4096) {
    const volatile struct memmap_entry *m = (const volatile struct memmap_entry *)si->memmap_paddr;
    u32 n = si->memmap_entries < MEMMAP_MAX ? si->memmap_entries : MEMMAP_MAX;
    for (u32 i = 0; i < n; i++) {
      g_boot.memmap[i].addr = m[i].addr;
      g_boot.memmap[i].size = m[i].size;
      g_boot.memmap[i].type = m[i].type;
    }
    g_boot.memmap_entries = n;
  }
}

static volatile u32 *lapic_reg(u32 offset) { return (volatile u32 *)(LAPIC_BASE + offset); }

static void send_ipi(u32 apic_id, u32 icr_lo) {
  *lapic_reg(0x310) = apic_id << 24;
  *lapic_reg(0x300) = icr_lo;
  for (u32 i = 0; i < 1000 && (*lapic_reg(0x300) & (1u << 12)); i++) {
  }
}

/* A short pause between INIT and SIPI; KVM does not need the architectural 10 ms. */
static void short_delay(void) {
  for (volatile u32 i = 0; i < 200; i++) {
  }
}

static void start_aps(u32 cpus) {
  volatile char *dst = (volatile char *)(u64)AP_TRAMPOLINE_PADDR;
  for (const char *p = ap_trampoline_start; p < ap_trampoline_end; p++) *dst++ = *p;
  *lapic_reg(0xF0) = 0x1FF; /* SVR: APIC software-enabled, spurious vector 0xFF */
  for (u32 id = 1; id < cpus; id++) send_ipi(id, 0x4500); /* INIT, level assert */
  short_delay();
  for (int round = 0; round < 2; round++) {
    for (u32 id = 1; id < cpus; id++) send_ipi(id, 0x4600 | (AP_TRAMPOLINE_PADDR >> 12));
    short_delay();
  }
}

static void bsp_main(void) {
  /* Mask both 8259s: PVM runs ring 3 with interrupts enabled whatever RFLAGS.IF says, and KVM
   * wires the BSP's LINT0 to ExtINT: an unmasked PIC could inject into a guest with no handlers. */
  outb(0x21, 0xFF);
  outb(0xA1, 0xFF);
  for (u32 v = 0; v < 32; v++) idt_set(v, isr_stubs[v], 0);
  load_idt();
  serial_write("amalgam-guest: ready\n");
  const struct hvm_start_info *si = (const struct hvm_start_info *)(u64)pvh_start_info_paddr;
  if (si == 0 || si->magic != PVH_MAGIC) {
    serial_write("amalgam-guest: FAIL no PVH start info (EBX=0x");
    serial_write_hex(pvh_start_info_paddr, 8);
    serial_write(")\n");
    guest_exit(1);
  }
  copy_start_info(si);
  parse_cpus();
  if (g_boot.cpus_requested > 1) start_aps(g_boot.cpus_requested);
}

/* Called on each CPU's kernel stack right after long mode is up; returns its ring-3 stack. */
u64 ring0_cpu_init(u32 cpu) {
  if (cpu == 0) {
    bsp_main();
  } else {
    load_idt(); /* the BSP filled it before it sent the SIPIs */
  }
  load_tss(cpu);
  u64 top = (u64)ustacks + (u64)(cpu + 1) * USTACK_SIZE;
  *(u64 *)(top - 8) = 0; /* fake return address: user_main sees an ABI-aligned stack */
  return top - 8;
}

/* PVM drops RFLAGS.IOPL on the way to ring 3 (its user mode always runs with IOPL=0), so ring-3
 * `in`/`out` raise #GP here. Emulate exactly the byte forms the guest uses; with hardware
 * virtualization IOPL=3 holds and this path never runs. Ring-3 `hlt` means "stop the VM" (it is
 * used after a debug-exit write that had no effect). Returns 1 when the trap was handled. */
static int emulate_user_insn(struct fault_frame *f) {
  if (f->vector != 13 || f->error != 0 || (f->cs & 3) != 3 || f->rip >= (4ull << 30) - 2) return 0;
  const volatile u8 *insn = (const volatile u8 *)f->rip;
  u16 port;
  u32 len;
  switch (insn[0]) {
    case 0xEE: /* out %al, (%dx) */
    case 0xEC: /* in (%dx), %al */
      port = (u16)f->rdx;
      len = 1;
      break;
    case 0xE6: /* out %al, $imm8 */
    case 0xE4: /* in $imm8, %al */
      port = insn[1];
      len = 2;
      break;
    case 0xF4: /* hlt */
      stop_vm();
    default:
      return 0;
  }
  if (insn[0] == 0xEE || insn[0] == 0xE6) {
    outb(port, (u8)f->rax);
    if (port == PORT_DEBUG_EXIT) stop_vm(); /* no debug-exit device: do not hang */
  } else {
    f->rax = (f->rax & ~0xFFull) | inb(port);
  }
  f->rip += len;
  return 1;
}

void ring0_trap(struct fault_frame *f) {
  if (emulate_user_insn(f)) return;
  u64 cr2;
  u16 tr;
  __asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
  __asm__ volatile("str %0" : "=r"(tr));
  serial_write("\namalgam-guest: FAULT vector=");
  serial_write_dec(f->vector);
  serial_write(" err=0x");
  serial_write_hex(f->error, 0);
  serial_write(" rip=0x");
  serial_write_hex(f->rip, 0);
  serial_write(" cr2=0x");
  serial_write_hex(cr2, 0);
  serial_write(" cpu=");
  serial_write_dec(tr >= SEL_TSS0 ? (u64)(tr - SEL_TSS0) / 16 : 0);
  serial_write(" ring=");
  serial_write_dec(f->cs & 3);
  serial_write(" rflags=0x");
  serial_write_hex(f->rflags, 0);
  serial_write("\n");
  guest_exit(1);
}
