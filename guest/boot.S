/* Ring-0 entry of the amalgam test guest: PVH note, 32 -> 64-bit switch for the BSP and the APs,
 * static page tables and GDT, exception stubs, the AP real-mode trampoline and the stacks.
 * Everything executable here lands in the .ring0 output section, which ring0_insn_check.sh scans:
 * PVM emulates guest ring 0 and cannot run int3/popcnt/SSE/xgetbv/rdtscp/cmpxchg16b. */
#include "guest.h"

/* PVH entry point (XEN_ELFNOTE_PHYS32_ENTRY), descsz 4. QEMU reads 8 bytes of desc on ELF64
 * images, so an empty note (all zeros) follows: its first 4 bytes are the zero upper half. */
        .section .note.Xen, "a", @note
        .balign 4
        .long 4
        .long 4
        .long 18
        .asciz "Xen"
        .long pvh_start32
        .long 0, 0, 0                   /* empty note: namesz 0, descsz 0, type 0 */

        .section .ring0.text, "ax", @progbits
        .code32
        .globl pvh_start32
pvh_start32:
        cli
        cld
        movl %ebx, pvh_start_info_paddr
        lgdt gdt_ptr
        ljmp $SEL_KCODE32, $1f
1:      movl $SEL_KDATA, %eax
        movl %eax, %ds
        movl %eax, %es
        movl %eax, %ss
        movl %eax, %fs
        movl %eax, %gs
        /* Shared by BSP and APs: no stack needed until long mode. */
enter_long_mode32:
        movl %cr0, %eax
        andl $0x9fffffff, %eax          /* caches on (APs come out of INIT with CD|NW) */
        movl %eax, %cr0
        movl %cr4, %eax
        orl $0x20, %eax                 /* PAE */
        movl %eax, %cr4
        movl $pml4, %eax
        movl %eax, %cr3
        movl $0xC0000080, %ecx          /* EFER.LME */
        rdmsr
        orl $0x100, %eax
        wrmsr
        movl %cr0, %eax
        orl $0x80000001, %eax           /* PG | PE */
        movl %eax, %cr0
        ljmp $SEL_KCODE64, $long_mode64

        .globl ap_start32
ap_start32:
        movl $SEL_KDATA, %eax
        movl %eax, %ds
        movl %eax, %es
        movl %eax, %ss
        movl %eax, %fs
        movl %eax, %gs
        jmp enter_long_mode32

        .code64
long_mode64:
        movl $SEL_KDATA, %eax
        movl %eax, %ds
        movl %eax, %es
        movl %eax, %ss
        movl %eax, %fs
        movl %eax, %gs
        /* CPU index by arrival: the BSP always comes first (it starts the APs). */
        movl $1, %eax
        lock xaddl %eax, cpu_next(%rip)
        cmpl $MAX_CPUS, %eax
        jae park
        movl %eax, %ebx                 /* callee-saved copy of the index */
        leal 1(%rax), %ecx
        shll $12, %ecx                  /* (index + 1) * KSTACK_SIZE */
        leaq kstacks(%rip), %rsp
        addq %rcx, %rsp
        movl %ebx, %edi
        call ring0_cpu_init             /* returns the ring-3 stack pointer */
        pushq $(SEL_UDATA | 3)
        pushq %rax
        pushq $0x3002                   /* IOPL=3 (PVM drops it: see ring0_trap), IF=0 */
        pushq $(SEL_UCODE64 | 3)
        movq $user_main, %rcx
        pushq %rcx
        movl %ebx, %edi
        iretq

park:   cli
        hlt
        jmp park

/* Exception stubs: push a dummy error code where the CPU pushes none, then the vector. */
        .macro ISR_NOERR vec
isr_\vec:
        pushq $0
        pushq $\vec
        jmp isr_common
        .endm
        .macro ISR_ERR vec
isr_\vec:
        pushq $\vec
        jmp isr_common
        .endm

        ISR_NOERR 0
        ISR_NOERR 1
        ISR_NOERR 2
        ISR_NOERR 3
        ISR_NOERR 4
        ISR_NOERR 5
        ISR_NOERR 6
        ISR_NOERR 7
        ISR_ERR 8
        ISR_NOERR 9
        ISR_ERR 10
        ISR_ERR 11
        ISR_ERR 12
        ISR_ERR 13
        ISR_ERR 14
        ISR_NOERR 15
        ISR_NOERR 16
        ISR_ERR 17
        ISR_NOERR 18
        ISR_NOERR 19
        ISR_NOERR 20
        ISR_ERR 21
        ISR_NOERR 22
        ISR_NOERR 23
        ISR_NOERR 24
        ISR_NOERR 25
        ISR_NOERR 26
        ISR_NOERR 27
        ISR_NOERR 28
        ISR_ERR 29
        ISR_ERR 30
        ISR_NOERR 31

isr_common:
        pushq %rax
        pushq %rbx
        pushq %rcx
        pushq %rdx
        pushq %rsi
        pushq %rdi
        pushq %rbp
        pushq %r8
        pushq %r9
        pushq %r10
        pushq %r11
        pushq %r12
        pushq %r13
        pushq %r14
        pushq %r15
        movq %rsp, %rdi
        call ring0_trap                 /* returns only if it emulated the instruction */
        popq %r15
        popq %r14
        popq %r13
        popq %r12
        popq %r11
        popq %r10
        popq %r9
        popq %r8
        popq %rbp
        popq %rdi
        popq %rsi
        popq %rdx
        popq %rcx
        popq %rbx
        popq %rax
        addq $16, %rsp                  /* vector and error code */
        iretq

/* Stops the VM: an empty IDT turns the ud2 into a triple fault, which every VMM turns into a
 * VM stop. Used after a debug-exit write that had no effect, so the guest never hangs. */
        .globl stop_vm
stop_vm:
        lidt null_idtr(%rip)
        ud2
        jmp park

/* AP trampoline, copied to AP_TRAMPOLINE_PADDR; SIPI vector 0x08 starts it at 0800:0000. */
        .code16
        .globl ap_trampoline_start, ap_trampoline_end
ap_trampoline_start:
        cli
        cld
        movw %cs, %ax
        movw %ax, %ds
        lgdtl (ap_tramp_gdtr - ap_trampoline_start)
        movl %cr0, %eax
        orl $1, %eax
        movl %eax, %cr0
        .byte 0x66, 0xea                /* ljmpl $SEL_KCODE32, $ap_start32 */
        .long ap_start32
        .word SEL_KCODE32
        .balign 8
ap_tramp_gdtr:
        .word gdt_end - gdt - 1
        .long gdt
ap_trampoline_end:
        .code64

        .section .rodata.isr, "a", @progbits
        .balign 8
        .globl isr_stubs
isr_stubs:
        .quad isr_0, isr_1, isr_2, isr_3, isr_4, isr_5, isr_6, isr_7
        .quad isr_8, isr_9, isr_10, isr_11, isr_12, isr_13, isr_14, isr_15
        .quad isr_16, isr_17, isr_18, isr_19, isr_20, isr_21, isr_22, isr_23
        .quad isr_24, isr_25, isr_26, isr_27, isr_28, isr_29, isr_30, isr_31

        .section .data.boot, "aw", @progbits
        .balign 16
        .globl gdt, gdt_end
gdt:
        .quad 0
        .quad 0x00cf9a000000ffff        /* 0x08 ring-0 code, 32-bit */
        .quad 0x00af9a000000ffff        /* 0x10 ring-0 code, 64-bit */
        .quad 0x00cf92000000ffff        /* 0x18 ring-0 data */
        .quad 0x00cff2000000ffff        /* 0x20 ring-3 data */
        .quad 0x00affa000000ffff        /* 0x28 ring-3 code, 64-bit */
        .fill MAX_CPUS * 2, 8, 0        /* 0x30 + 16 * cpu: TSS descriptors, filled per CPU */
gdt_end:
        .balign 8
gdt_ptr:
        .word gdt_end - gdt - 1
        .quad gdt
null_idtr:
        .word 0
        .quad 0
        .balign 4
        .globl pvh_start_info_paddr
pvh_start_info_paddr:
        .long 0
cpu_next:
        .long 0

/* Identity map of the first 4 GiB with 2 MiB pages, user-accessible (ring 3 owns the RAM); the
 * top GiB (LAPIC, IOAPIC) is uncached. Static so ring 0 spends no emulated instructions on it. */
        .section .data.pagetables, "aw", @progbits
        .balign 4096
pml4:
        .quad pdpt + 0x7
        .fill 511, 8, 0
pdpt:
        .quad pd + 0x0007
        .quad pd + 0x1007
        .quad pd + 0x2007
        .quad pd + 0x3007
        .fill 508, 8, 0
pd:
        .set addr, 0
        .rept 1536
        .quad addr + 0x87               /* P | RW | US | PS */
        .set addr, addr + 0x200000
        .endr
        .rept 512
        .quad addr + 0x9f               /* P | RW | US | PWT | PCD | PS */
        .set addr, addr + 0x200000
        .endr

        .section .bss.stacks, "aw", @nobits
        .balign 4096
        .globl kstacks, ustacks
kstacks:
        .skip MAX_CPUS * KSTACK_SIZE
ustacks:
        .skip MAX_CPUS * USTACK_SIZE

        .section .note.GNU-stack, "", @progbits
