// <linux/kvm.h> made usable from C++. Include this instead of <linux/kvm.h>, and before anything
// that includes it.
//
// WHY: the uapi headers (Linux 6.1, Debian 12) declare flexible arrays with
// __DECLARE_FLEX_ARRAY, an anonymous struct holding an empty struct. An empty struct has size 0
// in C but 1 in C++, so in C++ kvm_cpuid2, kvm_msrs, kvm_msr_list, kvm_xsave and
// kvm_signal_mask grow by 4-8 bytes: the entries move and the ioctl numbers (which encode the
// struct size) change, and KVM rejects them with EINVAL/ENOTTY. Redefining the macro as a
// zero-length array restores the C layout. The static_asserts catch a TU that included
// <linux/kvm.h> first.
#ifndef AMALGAM_VCPU_KVM_UAPI_H_
#define AMALGAM_VCPU_KVM_UAPI_H_

#include <linux/stddef.h>

#undef __DECLARE_FLEX_ARRAY
#define __DECLARE_FLEX_ARRAY(TYPE, NAME) TYPE NAME[0]

#include <linux/kvm.h>

static_assert(sizeof(kvm_cpuid2) == 8 && sizeof(kvm_msrs) == 8 && sizeof(kvm_msr_list) == 4 &&
                  sizeof(kvm_xsave) == 4096 && sizeof(kvm_signal_mask) == 4,
              "<linux/kvm.h> was included with the C++-broken __DECLARE_FLEX_ARRAY: include "
              "\"vcpu/kvm_uapi.h\" before any other header that includes <linux/kvm.h>");

#endif  // AMALGAM_VCPU_KVM_UAPI_H_
