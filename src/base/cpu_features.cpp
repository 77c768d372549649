#include "base/cpu_features.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#include <sched.h>
#include <unistd.h>

#include <fstream>
#include <set>
#include <string>
#include <utility>

namespace so {
namespace {

int count_physical_cores() {
  // Distinct (physical id, core id) pairs from /proc/cpuinfo; falls back to logical count.
  std::ifstream in("/proc/cpuinfo");
  std::set<std::pair<int, int>> cores;
  int physical_id = 0;
  std::string line;
  while (std::getline(in, line)) {
    auto value_of = [&](const char* key) -> int {
      auto colon = line.find(':');
      if (line.rfind(key, 0) != 0 || colon == std::string::npos) return -1;
      return std::stoi(line.substr(colon + 1));
    };
    if (int v = value_of("physical id"); v >= 0) physical_id = v;
    if (int v = value_of("core id"); v >= 0) cores.insert({physical_id, v});
  }
  return static_cast<int>(cores.size());
}

CpuFeatures detect() {
  CpuFeatures f;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  f.avx2 = __builtin_cpu_supports("avx2");
  f.fma = __builtin_cpu_supports("fma");
  // note: clang before 16 has no "f16c" for __builtin_cpu_supports; CPUID leaf 1 has it.
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  f.f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C) != 0;
  f.avx512f = __builtin_cpu_supports("avx512f");
  f.avx512bw = __builtin_cpu_supports("avx512bw");
  f.avx512vl = __builtin_cpu_supports("avx512vl");
  f.avx512dq = __builtin_cpu_supports("avx512dq");
  f.avx512vnni = __builtin_cpu_supports("avx512vnni");
  // note: GCC 12 and clang 14 cannot name AVX-VNNI in __builtin_cpu_supports: CPUID leaf 7
  // subleaf 1, EAX bit 4. It uses the AVX state the AVX2 check already confirmed.
  f.avx_vnni = f.avx2 && __get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx) && (eax & (1u << 4)) != 0;
#endif
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    f.n_logical_cpus = CPU_COUNT(&set);
  } else {
    f.n_logical_cpus = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  }
  int physical = count_physical_cores();
  f.n_physical_cores = (physical > 0 && physical <= f.n_logical_cpus) ? physical : f.n_logical_cpus;
  if (f.n_physical_cores < 1) f.n_physical_cores = 1;
  return f;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

}  // namespace so
