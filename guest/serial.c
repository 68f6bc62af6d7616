/* Serial output and the debug-exit port, shared by ring 0 and ring 3 (IOPL=3). Lives in the ring-0
 * section, so it obeys the ring-0 instruction rules. */
#include "guest.h"

extern void stop_vm(void) __attribute__((noreturn));

/* Everything executable here may run in ring 0: keep it in the checked section. */
#pragma clang section text = ".ring0.text"

static u32 g_serial_lock;

void serial_lock(void) {
  /* Bounded: a CPU that faults while another holds the lock still gets its report out. */
  for (u32 i = 0; i < 50000000; i++) {
    if (__atomic_exchange_n(&g_serial_lock, 1, __ATOMIC_ACQUIRE) == 0) return;
  }
}

void serial_unlock(void) { __atomic_store_n(&g_serial_lock, 0, __ATOMIC_RELEASE); }
/* No LSR polling: under PVM every ring-3 port access is an emulated trap (~100 us), and the VMMs
 * we target (QEMU's 16550, amalgam's) accept bytes back to back. */
static void serial_putc(char c) { outb(PORT_SERIAL, (u8)c); }

void serial_write(const char *s) {
  while (*s) serial_putc(*s++);
}

/* digits == 0: as many as needed (at least one). */
void serial_write_hex(u64 v, int digits) {
  char buf[17];
  int n = 0;
  do {
    buf[n++] = "0123456789abcdef"[v & 0xF];
    v >>= 4;
  } while ((v != 0 || n < digits) && n < 16);
  while (n > 0) serial_putc(buf[--n]);
}

void serial_write_dec(u64 v) {
  char buf[21];
  int n = 0;
  do {
    buf[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v != 0);
  while (n > 0) serial_putc(buf[--n]);
}

void guest_exit(u32 value) {
  serial_write("amalgam-guest: exit ");
  serial_write_dec(value);
  serial_write("\n");
  outb(PORT_DEBUG_EXIT, (u8)value);
  /* Still running: the VMM has no debug-exit device. Stop the VM instead of hanging: ring-3
   * hlt traps to ring 0 (ring0_trap), which triple-faults on purpose; ring 0 does it directly. */
  u16 cs;
  __asm__ volatile("mov %%cs, %0" : "=r"(cs));
  if ((cs & 3) == 3) __asm__ volatile("hlt");
  stop_vm();
}
