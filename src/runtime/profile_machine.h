// `specoffload profile`: measures the machine for the planner (planner/profile.h) through
// the same backend and streams the engine runs on.
#pragma once

#include <string>

#include "backend/backend.h"
#include "planner/profile.h"

namespace so {

struct ProfileOptions {
  std::string disk_file;  // a file to read cold (the model file); empty: skip the disk
  double seconds_per_measure = 0.25;
};

Result<HardwareProfile> profile_machine(Backend& backend, const ProfileOptions& options);

}  // namespace so
