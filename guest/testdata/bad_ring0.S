/* Fixture for ring0_insn_check: every forbidden kind once. This file is never booted. */
        .section .ring0, "ax", @progbits
        .globl _start
_start:
        popcnt %rax, %rbx
        int3
        xgetbv
        .section .text, "ax", @progbits
        movups %xmm0, (%rax)
