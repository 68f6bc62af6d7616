# A PVH guest that takes the 16550's THR-empty interrupt through the in-kernel IOAPIC and LAPIC.
# It switches to long mode (identity page tables for the first 2 MiB and the IOAPIC/LAPIC pages),
# installs a 64-bit IDT gate for vector 0x30, routes IOAPIC pin 4 there, enables the LAPIC and the
# UART's THR-empty interrupt, and halts with interrupts on. The handler reads IIR and leaves
# through the debug-exit port with IIR's interrupt id (2 = THR empty); anything else that wakes
# the CPU exits with 0x7f, and any other vector with 0x7e. Built by the genrule in ../BUILD.
        .section .note.Xen, "a", @note
        .balign 4
        .long 4, 4, 18          # namesz, descsz, XEN_ELFNOTE_PHYS32_ENTRY
        .asciz "Xen"
        .long _start

        .text
        .code32
        .globl _start
_start:
        # Page tables: PML4[0] -> PDPT; PDPT[0] -> PD0 (0-2 MiB), PDPT[3] -> PD3 (3-4 GiB).
        movl $pdpt + 0x3, pml4
        movl $pd0 + 0x3, pdpt
        movl $pd3 + 0x3, pdpt + 3 * 8
        movl $0x000083, pd0                     # 2 MiB page at 0, present|rw|ps
        movl $0xfec00093, pd3 + 0x1f6 * 8       # IOAPIC, present|rw|pcd|ps
        movl $0xfee00093, pd3 + 0x1f7 * 8       # LAPIC
        mov $pml4, %eax
        mov %eax, %cr3
        mov %cr4, %eax
        or $0x20, %eax                          # PAE
        mov %eax, %cr4
        mov $0xc0000080, %ecx                   # EFER.LME
        rdmsr
        or $0x100, %eax
        wrmsr
        mov %cr0, %eax
        or $0x80000001, %eax                    # PG | PE
        mov %eax, %cr0
        lgdt gdt_ptr
        ljmp $0x08, $long_mode

        .code64
long_mode:
        mov $0x10, %ax
        mov %ax, %ds
        mov %ax, %es
        mov %ax, %ss
        mov $0x80000, %rsp
        # Every gate -> unexpected (a clean failure instead of a triple fault), then 0x30.
        xor %ecx, %ecx
3:      lea unexpected(%rip), %rax
        mov %ecx, %edi
        shl $4, %edi
        lea idt(%rip), %rsi
        add %rsi, %rdi
        mov %ax, (%rdi)
        movw $0x08, 2(%rdi)
        movw $0x8e00, 4(%rdi)
        shr $16, %rax
        mov %ax, 6(%rdi)
        shr $16, %rax
        mov %eax, 8(%rdi)
        inc %ecx
        cmp $256, %ecx
        jb 3b
        # IDT gate 0x30 -> handler: 64-bit interrupt gate, DPL 0, selector 0x08.
        lea handler(%rip), %rax
        lea idt + 0x30 * 16(%rip), %rdi
        mov %ax, (%rdi)
        movw $0x08, 2(%rdi)
        movw $0x8e00, 4(%rdi)
        shr $16, %rax
        mov %ax, 6(%rdi)
        shr $16, %rax
        mov %eax, 8(%rdi)
        lidt idt_ptr(%rip)
        # LAPIC: software-enable (SVR = 0x1ff). (Addresses through a register: a 32-bit
        # absolute operand would be sign-extended in 64-bit mode.)
        mov $0xfee00000, %ebx
        movl $0x1ff, 0xf0(%rbx)
        # IOAPIC redirection entry 4: vector 0x30, fixed, edge, active high, unmasked, APIC 0.
        mov $0xfec00000, %ebx
        movl $0x18, (%rbx)
        movl $0x30, 0x10(%rbx)
        movl $0x19, (%rbx)
        movl $0, 0x10(%rbx)
        # Mask the 8259s: GSI 4 also reaches the (uninitialized, vector base 0) PIC, which KVM
        # wires to the BSP's LINT0; this test wants the IOAPIC path that Linux uses.
        mov $0xff, %al
        out %al, $0x21
        out %al, $0xa1
        # UART: IER = THR empty.
        mov $0x3f9, %dx
        mov $0x02, %al
        out %al, %dx
        sti
        hlt
        mov $0x7f, %al
        out %al, $0xf4
1:      hlt
        jmp 1b

unexpected:
        mov $0x7e, %al
        out %al, $0xf4
        hlt
handler:
        mov $0x3fa, %dx
        in %dx, %al
        and $0x0f, %al
        out %al, $0xf4
2:      hlt
        jmp 2b

        .data
        .balign 8
gdt:    .quad 0, 0x00af9a000000ffff, 0x00cf92000000ffff
gdt_ptr:
        .word 3 * 8 - 1
        .quad gdt
        .balign 16
idt:    .fill 512, 8, 0          # 256 gates of 16 bytes
idt_ptr:
        .word 256 * 16 - 1
        .quad idt

        .bss
        .balign 4096
pml4:   .fill 512, 8, 0
pdpt:   .fill 512, 8, 0
pd0:    .fill 512, 8, 0
pd3:    .fill 512, 8, 0
