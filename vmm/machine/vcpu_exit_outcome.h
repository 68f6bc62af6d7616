// OutcomeForVcpuExit: which vCPU exits end the VM, and how they are reported (the one line
// amalgam prints and the exit status it picks). Pure function; thread-safe.
#ifndef AMALGAM_VMM_MACHINE_VCPU_EXIT_OUTCOME_H_
#define AMALGAM_VMM_MACHINE_VCPU_EXIT_OUTCOME_H_

#include <cstdint>
#include <optional>

#include "vcpu/runner.h"
#include "vmm/exit_outcome.h"

namespace amalgam::vmm::machine {

// nullopt for exits the vCPU loop absorbs (kicks, a stop someone else requested).
std::optional<ExitOutcome> OutcomeForVcpuExit(uint32_t vcpu_index, const vcpu::VcpuExit& exit);

}  // namespace amalgam::vmm::machine

#endif  // AMALGAM_VMM_MACHINE_VCPU_EXIT_OUTCOME_H_
