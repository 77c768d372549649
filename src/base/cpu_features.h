// What the CPU can run, checked once. Kernels with ISA-specific code ask here.
#pragma once

namespace so {

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512dq = false;
  bool avx512vnni = false;
  bool avx_vnni = false;  // AVX-VNNI: vpdpbusd on ymm registers, no AVX-512 needed
  int n_physical_cores = 1;  // best guess; used for default thread counts
  int n_logical_cpus = 1;
  // AVX-512 F/BW/VL/DQ: what the float kernels of the *_avx512.cpp files use.
  bool avx512() const { return avx512f && avx512bw && avx512vl && avx512dq; }
};

const CpuFeatures& cpu_features();

}  // namespace so
